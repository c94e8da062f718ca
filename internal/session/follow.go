package session

import (
	"strings"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// clientSets are the session settings a transaction-pooled client made
// itself (SET, RESET, set_config(…, false), of any parameter): they
// follow it to every server it gets, after its startup parameters
// (attach), and never reach another client (the server is RESET ALL
// first: backend.SyncWith).
//
// Effects are seen as statements are sent, and count only once the
// server says how they ended: at their request's ReadyForQuery when it
// ran outside a transaction, at the transaction's end inside one; an
// error or a ROLLBACK drops them, as PostgreSQL does. The request of each
// effect is known by counting the requests sent and the ReadyForQuery
// received on the current link.
type clientSets struct {
	list    []setting // in the order last set
	replay  backend.Sets
	pending []pendingSet // sent; their request is not answered yet
	inTx    []pendingSet // ran in the transaction still open
	// asked counts the requests sent on the current link, seen the
	// ReadyForQuery received; failed: an error since the last one;
	// rolledBack: a ROLLBACK since the last one.
	asked, seen        int
	failed, rolledBack bool
}

// setting is one of the client's own settings and the SQL that makes it.
type setting struct{ name, sql string }

type pendingSet struct {
	e    sqlscan.Effect
	req  int
	call bool // a set_config call, not a SET statement
}

// linked starts counting for a new link: a transaction never spans two,
// so what was left undecided on the last one never ran to its end.
func (c *clientSets) linked() {
	c.pending, c.inTx = nil, nil
	c.asked, c.seen = 0, 0
	c.failed, c.rolledBack = false, false
}

// replayable reports whether every setting effects make can be made again
// on another server.
func replayable(q []byte, effects []sqlscan.Effect) bool {
	for _, e := range effects {
		if e.Kind == sqlscan.Set {
			if _, ok := replaySQL(e, isCall(q, e)); !ok {
				return false
			}
		}
	}
	return true
}

// isCall tells a set_config call's effect from a SET statement's: both
// start with "set" where Pos says.
func isCall(q []byte, e sqlscan.Effect) bool {
	return e.Pos+3 < len(q) && q[e.Pos+3] == '_'
}

// sent records the settings effects of q, one client message's SQL,
// sent as part of request number c.asked+1.
func (c *clientSets) sent(q []byte, effects []sqlscan.Effect) {
	for _, e := range effects {
		switch e.Kind {
		case sqlscan.Set, sqlscan.Reset, sqlscan.DiscardAll:
			c.pending = append(c.pending, pendingSet{e: e, req: c.asked + 1, call: isCall(q, e)})
		}
	}
}

// ready takes a ReadyForQuery with status: it decides the effects of
// the request it ends. noted says the server's record of the client's
// settings must change: to key, or backend.StaleSets when something was
// dropped that may have run (a savepoint, a partly failed query).
func (c *clientSets) ready(status byte) (noted bool, key string) {
	c.seen++
	n := 0
	for n < len(c.pending) && c.pending[n].req <= c.seen {
		n++
	}
	done := c.pending[:n]
	failed, rolledBack := c.failed, c.rolledBack
	c.failed, c.rolledBack = false, false
	if n == 0 && len(c.inTx) == 0 {
		return false, ""
	}
	c.inTx = append(c.inTx, done...)
	c.pending = c.pending[n:]
	switch {
	case failed || status == 'E' || status == 'I' && rolledBack:
		c.inTx = nil
		return true, backend.StaleSets
	case status == 'T':
		return false, ""
	}
	for _, p := range c.inTx {
		c.apply(p)
	}
	c.inTx = nil
	c.rebuild()
	return true, c.replay.Key
}

// apply makes one effect part of the list.
func (c *clientSets) apply(p pendingSet) {
	switch e := p.e; e.Kind {
	case sqlscan.DiscardAll:
		c.list = nil
	case sqlscan.Reset:
		if e.Name == "" {
			c.list = nil
			return
		}
		c.remove(resetName(e.Name))
	case sqlscan.Set:
		sql, ok := replaySQL(e, p.call)
		if !ok {
			return // pins keeps the client on its server (unknown_setting)
		}
		c.remove(e.Name)
		if sql != "" {
			c.list = append(c.list, setting{name: e.Name, sql: sql})
		}
	}
}

func (c *clientSets) remove(name string) {
	for i, s := range c.list {
		if s.name == name {
			c.list = append(c.list[:i:i], c.list[i+1:]...)
			return
		}
	}
}

// rebuild makes replay anew (never in place: attach may hold the last).
func (c *clientSets) rebuild() {
	r := backend.Sets{SQL: make([]string, len(c.list))}
	for i, s := range c.list {
		r.SQL[i] = s.sql
	}
	if len(r.SQL) > 0 {
		r.Key = strings.Join(r.SQL, "\x00")
	}
	c.replay = r
}

// resetName is the setting a RESET names: RESET TIME ZONE and RESET
// SESSION AUTHORIZATION read as their first word.
func resetName(name string) string {
	switch name {
	case "time":
		return "timezone"
	case "session":
		return "session_authorization"
	}
	return name
}

// replaySQL is the statement that makes e's setting again on another
// server: the value as the client wrote it, so it means exactly what it
// meant. "" with ok: the setting goes back to its default (TO DEFAULT).
// ok false: it cannot be replayed (a set_config value that is not a
// string literal, such as a bind parameter).
func replaySQL(e sqlscan.Effect, call bool) (sql string, ok bool) {
	v := e.Value
	if !e.Known || v == "" {
		return "", false
	}
	if call {
		if !plainLiteral(v) {
			return "", false
		}
		return "SELECT pg_catalog.set_config(" + quoteLiteral(e.Name) + ", " + v + ", false)", true
	}
	if strings.EqualFold(v, "default") {
		return "", true
	}
	if strings.Contains(v, "--") {
		v += "\n" // a comment in the value must not swallow what follows
	}
	switch e.Name {
	case "timezone":
		return "SET TIME ZONE " + v, true
	case "role":
		return "SET ROLE " + v, true
	case "session_authorization":
		return "SET SESSION AUTHORIZATION " + v, true
	}
	return "SET " + quoteName(e.Name) + " TO " + v, true
}

// plainLiteral reports whether v is one '…' string constant.
func plainLiteral(v string) bool {
	if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
		return false
	}
	in := v[1 : len(v)-1]
	return !strings.Contains(strings.ReplaceAll(in, "''", ""), "'")
}

// quoteName quotes a setting name part by part (myapp.user_id becomes
// "myapp"."user_id"), which PostgreSQL reads back as the same name.
func quoteName(name string) string {
	parts := strings.Split(name, ".")
	for i, p := range parts {
		parts[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(parts, ".")
}

// quoteLiteral quotes s as a standard string constant.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
