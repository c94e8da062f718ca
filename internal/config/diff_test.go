package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDiffOfIdenticalConfigsIsEmpty(t *testing.T) {
	c := Default()
	c.Databases = map[string]Database{"app": {Name: "app", Upstream: "postgres://u@h/app"}}
	d := Default()
	d.Databases = map[string]Database{"app": {Name: "app", Upstream: "postgres://u@h/app"}}
	if got := Diff(c, d); len(got) != 0 {
		t.Fatalf("Diff = %v, want none", got)
	}
}

func TestDiffShowsEachChangedSettingOldToNew(t *testing.T) {
	old, new := Default(), Default()
	new.PoolSize = 40
	new.QueryWaitTimeout = 5 * time.Second
	new.ServerResetQuery = ""
	got := Diff(old, new)
	want := []Change{
		{Key: "pool_size", Old: "20", New: "40"},
		{Key: "query_wait_timeout", Old: "20s", New: "5s"},
		{Key: "server_reset_query", Old: `"DISCARD ALL"`, New: `""`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff = %v, want %v", got, want)
	}
	if s := got[0].String(); s != "pool_size: 20 → 40" {
		t.Fatalf("String = %q", s)
	}
}

func TestEverySettingIsCompared(t *testing.T) {
	// A key added to Config but forgotten in the settings table would be
	// silently ignored by a reload.
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() || f.Name == "Databases" || f.Name == "Users" || f.Name == "Peers" { // each has its own test
			continue
		}
		c := Default()
		v := reflect.ValueOf(&c).Elem().Field(i)
		if v.Kind() == reflect.Struct { // each of its string fields is a key
			for j := range v.NumField() {
				c := Default()
				w := reflect.ValueOf(&c).Elem().Field(i).Field(j)
				w.SetString(w.String() + "x")
				if len(Diff(Default(), c)) != 1 {
					t.Errorf("changing %s.%s is not one Change: %v", f.Name, v.Type().Field(j).Name, Diff(Default(), c))
				}
			}
			continue
		}
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Uint32: // a file mode
			v.SetUint(v.Uint() - 1)
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"x"}))
		default:
			t.Fatalf("field %s: unexpected kind %s", f.Name, v.Kind())
		}
		if len(Diff(Default(), c)) != 1 {
			t.Errorf("changing %s is not one Change: %v", f.Name, Diff(Default(), c))
		}
	}
}

func TestReloadedKeepsRestartOnlySettingsAndSaysARestartIsNeeded(t *testing.T) {
	running, next := Default(), Default()
	next.Listen = "127.0.0.1:7000"
	next.Auth = AuthPassthrough
	next.PoolSize = 3
	applied, changes := Reloaded(running, next)
	if applied.Listen != running.Listen || applied.Auth != running.Auth || applied.PoolSize != 3 {
		t.Fatalf("applied listen %q auth %q pool_size %d; want the running listen and auth, the new pool_size",
			applied.Listen, applied.Auth, applied.PoolSize)
	}
	restart := map[string]bool{}
	for _, c := range changes {
		restart[c.Key] = c.Restart
	}
	want := map[string]bool{"listen": true, "auth_type": true, "pool_size": false}
	if !reflect.DeepEqual(restart, want) {
		t.Fatalf("changes %v; want restart flags %v", changes, want)
	}
	for _, c := range changes {
		if c.Restart && !strings.Contains(c.String(), "needs a restart") {
			t.Fatalf("%q does not say a restart is needed", c)
		}
	}
}

func TestDiffListsAddedRemovedAndChangedRoutesWithoutPasswords(t *testing.T) {
	old, new := Default(), Default()
	old.Upstream = "postgres://app:oldsecret@db1/app"
	new.Upstream = "postgres://app:newsecret@db1/app"
	old.Databases = map[string]Database{
		"gone":    {Upstream: "postgres://u:gonesecret@h/gone"},
		"changed": {Upstream: "postgres://u@h1/c", PoolMode: PoolSession, PoolSize: 2},
		"same":    {Upstream: "postgres://u@h/s"},
	}
	new.Databases = map[string]Database{
		"added":   {Upstream: "postgres://u:addedsecret@h/added"},
		"changed": {Upstream: "postgres://u@h2/c", PoolMode: PoolTransaction, PoolSize: 5},
		"same":    {Upstream: "postgres://u@h/s"},
	}
	got := Diff(old, new)
	var keys []string
	for _, c := range got {
		keys = append(keys, c.Key)
		if s := c.String(); strings.Contains(s, "secret") {
			t.Errorf("%q shows a password", s)
		}
	}
	want := []string{"upstream", "databases.added", "databases.changed.upstream", "databases.changed.pool_mode",
		"databases.changed.pool_size", "databases.gone"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("changed keys %v, want %v", keys, want)
	}
	if !strings.Contains(got[0].New, "new password") {
		t.Errorf("a password-only change must say so: %v", got[0])
	}
	if got[1].Old != "" || got[5].New != "" {
		t.Errorf("an added route has no old value, a removed one no new: %v, %v", got[1], got[5])
	}
}

func TestReloadedKeepsEveryRestartOnlySetting(t *testing.T) {
	running, next := Default(), Default()
	next.Listen, next.Auth = "127.0.0.1:7000", AuthPassthrough
	next.LogFormat, next.MetricsListen = "json", "127.0.0.1:9187"
	next.UnixSocketDir, next.UnixSocketMode = "/run/pgvalve", 0o700
	next.TakeoverSocket = "/run/pgvalve/takeover"
	next.ClientParkDelay = 5 * time.Second
	next.PeerID = 3
	applied, changes := Reloaded(running, next)
	var restartKeys []string
	for _, c := range changes {
		if c.Restart {
			restartKeys = append(restartKeys, c.Key)
		}
	}
	// Every restart-only key changed in next; this fails when one is added
	// to the table without Reloaded keeping it.
	var table []string
	for _, it := range Default().Items() {
		if !it.Changeable {
			table = append(table, it.Key)
		}
	}
	if !reflect.DeepEqual(restartKeys, table) {
		t.Fatalf("restart-only changes %v; the settings table has %v", restartKeys, table)
	}
	for _, it := range applied.Items() {
		if !it.Changeable && it.Value != it.Default {
			t.Fatalf("%s applied as %q; a reload must keep the running %q", it.Key, it.Value, it.Default)
		}
	}
}

func TestItemsListSettingsWithDefaultsAndHideUpstreamPasswords(t *testing.T) {
	c := Default()
	c.PoolSize = 7
	c.Upstream = "postgres://app:topsecret@db1/app"
	c.AdminUsers = []string{"admin", "ops"}
	items := map[string]Item{}
	for _, it := range c.Items() {
		items[it.Key] = it
	}
	if it := items["pool_size"]; it.Value != "7" || it.Default != "20" || !it.Changeable {
		t.Fatalf("pool_size item %+v; want value 7, default 20, changeable", it)
	}
	if it := items["admin_users"]; it.Value != "admin,ops" || it.Default != "" {
		t.Fatalf("admin_users item %+v; want admin,ops with an empty default", it)
	}
	if it := items["listen"]; it.Changeable {
		t.Fatalf("listen item %+v is changeable; it is bound once", it)
	}
	if strings.Contains(items["upstream"].Value, "topsecret") {
		t.Fatalf("upstream item %q shows the password", items["upstream"].Value)
	}
}

func TestUserChangesAreEachOneChange(t *testing.T) {
	old, new := Default(), Default()
	old.Users = map[string]User{"bob": {Name: "bob", PoolMode: PoolSession}, "gone": {Name: "gone", MaxUserConnections: 3}}
	new.Users = map[string]User{"bob": {Name: "bob", PoolMode: PoolTransaction, MaxUserConnections: 5}, "new": {Name: "new", PoolMode: PoolStatement}}
	got := make([]string, 0, 5)
	for _, c := range Diff(old, new) {
		got = append(got, c.String())
	}
	want := []string{"users.bob.pool_mode: session → transaction", "users.bob.max_user_connections: 0 → 5",
		"users.gone.max_user_connections: 3 → 0", "users.new.pool_mode: (none) → statement"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff = %q\nwant %q", got, want)
	}
}
