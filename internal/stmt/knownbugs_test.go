package stmt

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// designDeferred is the one difference pgvalve makes by design: Defer
// answers a PQprepare batch without a server, so an error in the query
// text surfaces when the statement is first used, not at Parse.
const designDeferred = "design: a deferred Parse reports errors in its query at first use"

// Known bugs, each reproduced by a skipped test in bugs_test.go. Outside
// strict mode a difference that one of them explains is counted and the
// books are repaired, so the fuzzer goes on looking for others.
const (
	bugPipelined       = "BUG pipelined-undo: a message's effects are applied when it is sent; when it fails or is skipped, messages of later Sync groups already rewritten assumed it took effect, and its undo restores values captured before them, clobbering what they did"
	bugParseInFailedTx = "BUG parse-in-failed-transaction: a Parse of a statement the server holds is answered ParseComplete in a failed transaction, where PostgreSQL refuses it with 25P02"
	bugExtendedDealloc = "BUG extended-deallocate: DEALLOCATE or DISCARD ALL run with Parse/Bind/Execute is not tracked"
	bugFailedUnnamed   = "BUG failed-unnamed: a Parse of the unnamed statement that fails restores the previous unnamed statement in the Registry and ServerSet, but PostgreSQL dropped it before parsing"
	bugHiddenAborted   = "BUG hidden-aborted: in a failed transaction the hidden Parse fails with 25P02, where PostgreSQL reports the Bind's own error first or answers a Describe of a statement returning no rows"
)

// touches lists what a message reads or changes: "n:name" for a named
// statement, "t:text" for a statement's content, "u" for the unnamed
// statement, "all" for every statement.
func touches(ev modelEvent) []string {
	var keys []string
	switch {
	case ev.typ == 'Q':
		keys = append(keys, "u")
		if ev.name != "" {
			keys = append(keys, "n:"+ev.name)
		}
		// DEALLOCATE name is rewritten to DEALLOCATE ALL: the whole set.
		if ev.name != "" || strings.HasSuffix(strings.ToUpper(strings.TrimSuffix(ev.query, ";")), " ALL") {
			keys = append(keys, "all")
		}
		return keys
	case ev.typ == 'P', ev.typ == 'B', (ev.typ == 'D' || ev.typ == 'C') && ev.kind == 'S':
		if ev.name == "" {
			keys = append(keys, "u")
		} else {
			keys = append(keys, "n:"+ev.name)
		}
		if ev.query != "" {
			keys = append(keys, "t:"+ev.query)
		}
	}
	return keys
}

// explain names the known bug behind a difference met in client c's
// round, from what the backends logged of that round; "" when none
// applies.
func (s *sim) explain(c *simClient) string {
	if c.deferredFailed {
		return designDeferred
	}
	for _, ev := range c.ded.log {
		switch {
		case ev.round != c.round || ev.skipped:
		case ev.typ == 'P' && ev.name != "" && ev.aborted && ev.code == "25P02":
			return bugParseInFailedTx
		case ev.typ == 'E' && (strings.HasPrefix(ev.query, "DEALLOCATE") || ev.query == "DISCARD ALL"):
			return bugExtendedDealloc
		case ev.typ == 'P' && ev.name == "" && ev.code != "":
			return bugFailedUnnamed
		}
	}
	// On the shared backend: statements (server names, or "" for the
	// unnamed one) whose Parse or Close failed or was skipped, by Sync group.
	for _, b := range s.backends {
		lost, group, afterQuery := map[string]int{}, 0, false
		for _, ev := range b.m.log {
			if ev.who != c.id || ev.round != c.round {
				continue
			}
			if ev.typ == 'S' || afterQuery {
				group++ // a simple query ends its own group too
			}
			afterQuery = ev.typ == 'Q' && !ev.skipped
			_, gone := lost[ev.name]
			g, unnamedGone := lost[""]
			if (ev.typ == 'P' || ev.typ == 'B' || ev.kind == 'S') && !ev.skipped && gone ||
				ev.typ == 'Q' && len(lost) > 0 && strings.HasSuffix(ev.query, " ALL") ||
				// a query drops the unnamed statement, and its undo restores it
				ev.typ == 'Q' && unnamedGone && (!ev.skipped || g < group) {
				return bugPipelined // run, it builds on what did not happen; undone, what it restores is stale
			}
			if (ev.typ == 'P' || ev.typ == 'C' && ev.kind == 'S') && ev.name != noopName &&
				(ev.name == "" || strings.HasPrefix(ev.name, serverPrefix)) && (ev.skipped || ev.code != "") {
				if g, ok := lost[ev.name]; ok && g < group {
					return bugPipelined // undone twice: the later undo is stale
				}
				lost[ev.name] = group
				if ev.code == "25P02" {
					return bugHiddenAborted
				}
			}
		}
	}
	undone := map[string]bool{}  // what messages that failed or were skipped touched
	undoneIn := map[string]int{} // and in which Sync group
	group, afterQuery := 0, false
	for _, ev := range c.ded.log {
		if ev.round != c.round {
			continue
		}
		if ev.typ == 'S' || afterQuery {
			group++ // a simple query ends its own group too
		}
		afterQuery = ev.typ == 'Q' && !ev.skipped
		keys := touches(ev)
		if !ev.skipped {
			for _, k := range keys {
				if undone[k] || undone["all"] && k != "u" || k == "all" && len(undone) > 0 {
					return bugPipelined
				}
			}
		}
		if (ev.skipped || ev.code != "") && (ev.typ == 'P' || ev.typ == 'C' || ev.typ == 'Q') {
			for _, k := range keys {
				// Undone twice, the later undo is stale; an undo of
				// DEALLOCATE/DISCARD ALL restores a snapshot of everything.
				if g, ok := undoneIn[k]; ok && g < group {
					return bugPipelined
				}
				if g, ok := undoneIn["all"]; ok && g < group {
					return bugPipelined
				}
				for _, g := range undoneIn {
					if k == "all" && g < group {
						return bugPipelined
					}
				}
				// A failed simple query still drops the unnamed statement.
				if ev.skipped || ev.typ != 'Q' || k != "u" {
					undone[k] = true
					undoneIn[k] = group
				}
			}
		}
	}
	return ""
}

// Known differences that leave both sides in the same state: the run
// passes over them (outside strict mode) and counts them.
const (
	diffQuoting       = "BUG deferred-quoting: the 42P05 Defer writes quotes the name with Go's %q, not as PostgreSQL does"
	diffDupPrecedence = "BUG dup-precedence: a duplicate Parse fails with 42P05 where PostgreSQL reports its syntax error or 25P02 first"
	diffServerName    = "BUG server-name: an error message names pgvalve's server-side statement instead of the client's"
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
	case w.Code == "42P05" && g.Code == "42P05" && strings.ReplaceAll(g.Message, `\"`, `"`) == w.Message:
		return diffQuoting
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
