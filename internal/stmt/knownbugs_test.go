package stmt

// designDeferred is the one difference pgvalve makes by design: Defer
// answers a PQprepare batch without a server, so an error in the query
// text surfaces when the statement is first used, not at Parse.
const designDeferred = "design: a deferred Parse reports errors in its query at first use"

// Known limitations, each shown by a test in scenarios_test.go. Outside
// strict mode a difference that one of them explains is counted and the
// books are repaired, so the fuzzer goes on looking for others.
const (
	limitDeferredAborted = "limitation: a statement deferred by PQprepare, first described inside a failed transaction, where it cannot be parsed, gets 25P02"
)

// explain names the design difference or known limitation behind a
// difference met in client c's round, from what the backends logged of
// that round; "" when none applies.
func (s *sim) explain(c *simClient) string {
	if c.deferredFailed {
		return designDeferred
	}
	for _, ev := range c.ded.log {
		if ev.round != c.round || ev.typ != 'D' || ev.kind != 'S' || !ev.aborted {
			continue
		}
		if st, ok := c.tr.reg.Get(ev.name); ok && !st.parsed {
			return limitDeferredAborted
		}
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
		reg.m[name] = NewStatement(Parse{Name: name, Query: st.query, ParamTypes: paramTypes(st.params...)})
	}
	reg.unnamed = nil
	if st := c.ded.unnamed; st != nil {
		reg.unnamed = NewStatement(Parse{Query: st.query, ParamTypes: paramTypes(st.params...)})
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
