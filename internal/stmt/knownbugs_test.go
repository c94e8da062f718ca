package stmt

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// designDeferred is the one difference pgvalve makes by design: Defer
// answers a PQprepare batch without a server, so an error in the query
// text surfaces when the statement is first used, not at Parse.
const designDeferred = "design: a deferred Parse reports errors in its query at first use"

// Known limitations, each shown by a test in bugs_test.go. Outside
// strict mode a difference that one of them explains is counted and the
// books are repaired, so the fuzzer goes on looking for others.
const (
	limitExtendedDealloc = "accepted: DEALLOCATE or DISCARD ALL run with Parse/Bind/Execute is not tracked"
	limitHiddenAborted   = "limitation: in a failed transaction a statement the server lacks cannot be prepared; the hidden Parse fails with 25P02 first"
	bugPipelinedName     = "BUG pipelined-name: the client's statements are rewritten as they are when a message is sent; a Parse, Close or DEALLOCATE of that name (or the unnamed statement) in an earlier, still unanswered Sync group may yet fail or be skipped"
)

// explain names the known limitation behind a difference met in client
// c's round, from what the backends logged of that round; "" when none
// applies.
func (s *sim) explain(c *simClient) string {
	if c.deferredFailed {
		return designDeferred
	}
	lost := map[string]int{} // client names (or "all") whose change failed or was skipped, by Sync group
	group, afterQuery := 0, false
	for _, ev := range c.ded.log {
		if ev.round != c.round {
			continue
		}
		if ev.typ == 'S' || afterQuery {
			group++ // a simple query ends its own group too
		}
		afterQuery = ev.typ == 'Q' && !ev.skipped
		switch {
		case ev.skipped:
		case ev.typ == 'E' && (strings.HasPrefix(ev.query, "DEALLOCATE") || ev.query == "DISCARD ALL"):
			return limitExtendedDealloc
		case ev.typ == 'P' || ev.typ == 'Q' && ev.name != "" || ev.typ == 'B' || ev.typ == 'D' && ev.kind == 'S':
			if g, ok := lost[ev.name]; ok && g < group {
				return bugPipelinedName
			}
			if g, ok := lost["all"]; ok && g < group {
				return bugPipelinedName
			}
		}
		if !ev.skipped && ev.code == "" {
			continue
		}
		switch {
		case ev.typ == 'P', ev.typ == 'C' && ev.kind == 'S':
			lost[ev.name] = group // "" for the unnamed statement
		case ev.typ == 'Q':
			if ev.name != "" {
				lost[ev.name] = group
			}
			if ev.skipped {
				lost[""] = group // a query drops the unnamed statement
			}
			if strings.HasSuffix(ev.query, " ALL") {
				lost["all"] = group
			}
		}
	}
	for _, b := range s.backends {
		for _, ev := range b.m.log {
			if ev.who == c.id && ev.round == c.round && ev.typ == 'P' && ev.code == "25P02" &&
				(ev.name == "" || strings.HasPrefix(ev.name, serverPrefix)) {
				return limitHiddenAborted
			}
		}
	}
	return ""
}

// Accepted differences that leave both sides in the same state: the run
// passes over them (outside strict mode) and counts them.
const (
	diffDupPrecedence = "accepted: dup-precedence: a duplicate Parse fails with 42P05 where PostgreSQL reports its syntax error or 25P02 first"
	diffServerName    = "accepted: server-name: an error message names pgvalve's server-side statement instead of the client's"
)

// unquote drops a message's quoted name: everything from the first to the
// last double quote.
func unquote(msg string) string {
	i, j := strings.IndexByte(msg, '"'), strings.LastIndexByte(msg, '"')
	if i < 0 || j <= i {
		return msg
	}
	return msg[:i] + msg[j+1:]
}

// allowedDifference names a known difference between two answers.
func allowedDifference(want, got backendMessage) string {
	if want.typ != 'E' || got.typ != 'E' {
		return ""
	}
	var w, g pgproto3.ErrorResponse
	if w.Decode(want.body) != nil || g.Decode(got.body) != nil {
		return ""
	}
	switch {
	case (w.Code == "42601" || w.Code == "25P02") && g.Code == "42P05":
		return diffDupPrecedence
	case w.Code == g.Code && strings.Contains(g.Message, serverPrefix) &&
		unquote(w.Message) == unquote(g.Message):
		return diffServerName
	}
	return ""
}

// repair makes the books match the backends again after a known bug
// struck, so the run can go on looking for others: the registry becomes
// the dedicated server's statements, and the shared backend and its
// ServerSet keep only what both hold, within max.
func (s *sim) repair(c *simClient) {
	reg := c.tr.reg
	clear(reg.m)
	for name, st := range c.ded.stmts {
		reg.m[name] = &Statement{Query: st.query, ParamTypes: paramTypes(st.params...), Server: modelServerName(st)}
	}
	reg.unnamed = nil
	if st := c.ded.unnamed; st != nil {
		reg.unnamed = &Statement{Query: st.query, ParamTypes: paramTypes(st.params...), Server: modelServerName(st)}
	}
	if c.held < 0 {
		return
	}
	b := s.backends[c.held]
	if b.m.skip != c.ded.skip {
		s.known = "the servers skip to Sync differently after: " + s.explain(c)
		return
	}
	// The client's session on the shared backend follows its dedicated one.
	b.m.inBlock, b.m.failed = c.ded.inBlock, c.ded.failed
	c.status = c.ded.status()
	clear(b.m.portals)
	for name, p := range c.ded.portals {
		b.m.portals[name] = &modelPortal{query: p.query, ran: p.ran}
	}
	for name := range b.m.stmts {
		if !b.set.Has(name) {
			delete(b.m.stmts, name)
		}
	}
	for name := range b.set.m {
		if _, ok := b.m.stmts[name]; !ok {
			b.set.Remove(name)
		}
	}
	for b.set.Len() > s.max {
		victim := b.set.ll.Back().Value.(*serverStmt).name
		b.set.Remove(victim)
		delete(b.m.stmts, victim)
	}
	b.set.unnamed = ""
	if b.m.unnamed != nil {
		b.set.unnamed = modelServerName(b.m.unnamed)
	}
}
