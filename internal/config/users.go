package config

import (
	"fmt"
	"maps"
	"slices"

	"github.com/BurntSushi/toml"
)

// User is one [users.NAME] entry: settings of the pools whose server user
// is NAME, as PgBouncer's [users] section has them. They win over the
// route's and the global ones.
type User struct {
	Name               string
	PoolMode           PoolMode // "" = the route's
	MaxUserConnections int      // 0 = max_user_connections
	Line               int      // line of the [users.NAME] header; 0 if unknown
}

// UserPoolMode is the pool mode of pools whose server user is user under
// route: the user's own, else the route's.
func (c Config) UserPoolMode(user string, route Database) PoolMode {
	if m := c.Users[user].PoolMode; m != "" {
		return m
	}
	return route.PoolMode
}

// UserMaxConnections is the cap on user's server connections across its
// pools: the user's own, else max_user_connections.
func (c Config) UserMaxConnections(user string) int {
	if n := c.Users[user].MaxUserConnections; n > 0 {
		return n
	}
	return c.MaxUserConnections
}

func (d *decoder) users(path toml.Key, val any, into map[string]User) {
	d.eachTable(path, val, "[users.NAME] entries", func(name string, line int, key string, kp toml.Key, val any) {
		u, seen := into[name]
		if !seen {
			u = User{Name: name, Line: line}
		}
		switch key {
		case "":
		case "pool_mode":
			d.str(kp, val, (*string)(&u.PoolMode))
		case "max_user_connections":
			d.int(kp, val, &u.MaxUserConnections)
		default:
			d.unknown(kp)
		}
		into[name] = u
	})
}

// checkUsers validates the [users.NAME] entries.
func (c Config) checkUsers(k *checker, f Config) {
	for _, name := range slices.Sorted(maps.Keys(c.Users)) {
		u, fu := c.Users[name], f.Users[name]
		field := func(key string) toml.Key { return toml.Key{"users", name, key} }
		at := toml.Key{"users", name}
		if u.PoolMode != "" && !u.PoolMode.Valid() {
			k.add(field("pool_mode"), u.PoolMode == fu.PoolMode, at, "%q is not one of session, transaction, statement", u.PoolMode)
		}
		if u.MaxUserConnections < 0 {
			k.add(field("max_user_connections"), u.MaxUserConnections == fu.MaxUserConnections, at, "must not be negative")
		}
	}
}

// diffUsers lists what changed in [users], by name.
func diffUsers(old, new map[string]User) []Change {
	names := slices.Sorted(maps.Keys(old))
	for n := range new {
		if _, had := old[n]; !had {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var out []Change
	for _, name := range names {
		o, n := old[name], new[name]
		if o.PoolMode != n.PoolMode {
			out = append(out, Change{Key: "users." + name + ".pool_mode", Old: string(o.PoolMode), New: string(n.PoolMode)})
		}
		if o.MaxUserConnections != n.MaxUserConnections {
			out = append(out, Change{Key: "users." + name + ".max_user_connections",
				Old: fmt.Sprint(o.MaxUserConnections), New: fmt.Sprint(n.MaxUserConnections)})
		}
	}
	return out
}
