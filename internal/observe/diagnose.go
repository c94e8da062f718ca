package observe

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Diagnose says, in plain words, what is wrong with each pool in trouble:
// one line per such pool, in the order of pools. A pool is in trouble when
//
//   - it is paused and clients wait (PAUSE holds them until RESUME);
//   - the server refuses its logins (LastDialError reads as an
//     authentication, role, database or connection-limit refusal);
//   - the server cannot be reached (any other LastDialError) while clients
//     wait or dials fail;
//   - every server is busy and clients wait: the line then says who holds
//     the servers, grouped by application and client host, most first.
//
// clients is every client (any pool); Diagnose picks each pool's own. It is
// a pure function of its arguments so that every reader of pgvalve's state
// words trouble the same way.
func Diagnose(pools []Pool, clients []Client, now time.Time) []string {
	type key struct{ db, user string }
	byPool := make(map[key][]Client)
	for _, c := range clients {
		k := key{c.Database, c.User}
		byPool[k] = append(byPool[k], c)
	}
	var out []string
	for _, p := range pools {
		if line := diagnosePool(p, byPool[key{p.Database, p.User}], now); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// diagnosePool returns the line for one pool, "" when it is fine.
func diagnosePool(p Pool, clients []Client, now time.Time) string {
	wait := longestWait(p, clients, now)
	waiting := fmt.Sprintf("%s waiting, longest wait %s", plural(p.ClientsWaiting, "client"), seconds(wait))
	var parts []string
	switch {
	case p.Paused && p.ClientsWaiting > 0:
		parts = append(parts, fmt.Sprintf("paused, %s — RESUME lets them in", waiting))
	case p.LastDialError != "" && refusesLogin(p.LastDialError):
		s := fmt.Sprintf("the server refuses logins: %s", p.LastDialError)
		if p.ClientsWaiting > 0 {
			s += "; " + waiting
		}
		parts = append(parts, s)
	case p.LastDialError != "" && (p.ClientsWaiting > 0 || p.DialErrors > 0):
		s := fmt.Sprintf("cannot reach the server: %s", p.LastDialError)
		if p.ClientsWaiting > 0 {
			s += "; " + waiting
		}
		parts = append(parts, s)
	case p.ClientsWaiting > 0 && p.Size > 0 && p.ServersActive >= p.Size:
		parts = append(parts, fmt.Sprintf("%d of %d servers busy, %s", p.ServersActive, p.Size, waiting))
		parts = append(parts, holders(clients, now)...)
	default:
		return ""
	}
	return fmt.Sprintf("pool %s/%s: %s", p.Database, p.User, strings.Join(parts, "; "))
}

// longestWait is the oldest waiting client's wait, from the pool's own
// figure or the clients' WaitingSince, whichever is longer.
func longestWait(p Pool, clients []Client, now time.Time) time.Duration {
	w := p.MaxWait
	for _, c := range clients {
		if !c.WaitingSince.IsZero() {
			w = max(w, now.Sub(c.WaitingSince))
		}
	}
	return w
}

// holders words who holds a saturated pool's servers: clients idle in a
// transaction first (the usual culprit), then long-running queries.
func holders(clients []Client, now time.Time) []string {
	var parts []string
	if g := groupHolders(clients, "idle in transaction", now); g.n > 0 {
		parts = append(parts, fmt.Sprintf("%s held by clients idle in transaction for up to %s (%s) — see idle_transaction_timeout",
			plural(g.n, "server"), seconds(g.longest), g.who))
	}
	if g := groupHolders(clients, "running query", now); g.n > 0 {
		parts = append(parts, fmt.Sprintf("%s running queries for up to %s (%s)",
			plural(g.n, "server"), seconds(g.longest), g.who))
	}
	return parts
}

type holderGroups struct {
	n       int           // servers held in that state
	longest time.Duration // the longest hold
	who     string        // the groups, most first
}

// groupHolders groups the clients holding a server in state by
// (application_name, client host), most servers first.
func groupHolders(clients []Client, state string, now time.Time) holderGroups {
	type key struct{ app, host string }
	counts := make(map[key]int)
	var g holderGroups
	for _, c := range clients {
		if c.ServerPID == 0 || c.HoldState != state {
			continue
		}
		g.n++
		if !c.HeldSince.IsZero() {
			g.longest = max(g.longest, now.Sub(c.HeldSince))
		}
		counts[key{c.ApplicationName, host(c.Addr)}]++
	}
	if g.n == 0 {
		return g
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.app, b.app), cmp.Compare(a.host, b.host))
	})
	const shown = 3
	var words []string
	for i, k := range keys {
		if i == shown {
			words = append(words, fmt.Sprintf("and %d more", len(keys)-shown))
			break
		}
		w := fmt.Sprintf("application '%s', %s", k.app, k.host)
		if len(keys) > 1 {
			w += fmt.Sprintf(": %d", counts[k])
		}
		words = append(words, w)
	}
	g.who = strings.Join(words, "; ")
	return g
}

// refusesLogin reports whether a dial error is the server refusing the
// login (PostgreSQL answered) rather than the server being unreachable.
func refusesLogin(msg string) bool {
	m := strings.ToLower(msg)
	for _, s := range []string{
		"28p01", "28000", "3d000", "53300", "57p03", // SQLSTATEs of refusals
		"password authentication failed", "authentication failed",
		"no pg_hba.conf entry", "does not exist", "too many clients",
		"too many connections", "not permitted to log in",
		"the database system is starting up", "the database system is shutting down",
	} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// host is the host part of a host:port address (the address itself when it
// has no port).
func host(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1f s", d.Seconds())
}
