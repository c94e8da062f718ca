package stmt

import "maps"

// An effect is one change a message makes to the client's Registry or the
// server's ServerSet. It is made when the message is sent, so the rest of
// a pipeline is rewritten as if the message succeeded, and returns how to
// revert it: nil when there is nothing to revert, which costs nothing to
// record (most simple queries drop an unnamed statement already gone).
//
// When the server fails or skips a message, reverting only that message's
// effects would restore values captured before later messages of the
// pipeline changed them. Instead every pending effect is reverted, newest
// first, back to what the answered messages made (rewind); the failed
// message's effects on failure are made for good; and the effects of the
// messages still to be answered are made again (replay).
type effect func() (undo func())

// apply makes e's effects, recording how to revert them.
func (t *Tracker) apply(e *entry) {
	for _, f := range e.ok {
		if u := f(); u != nil {
			e.undo = append(e.undo, u)
		}
	}
}

// rewind reverts every pending effect, newest first.
func (t *Tracker) rewind() {
	for i := len(t.q) - 1; i >= 0; i-- {
		u := t.q[i].undo
		for j := len(u) - 1; j >= 0; j-- {
			u[j]()
		}
		t.q[i].undo = nil
	}
}

// replay makes the effects of every pending message again, oldest first.
func (t *Tracker) replay() {
	for i := range t.q {
		t.apply(&t.q[i])
	}
}

// The effects. Each notes, when the message is rewritten, the Sync group
// that changes the name last (see tentative).

func (t *Tracker) regSet(name string, st *Statement) effect {
	t.regTouch(name)
	return func() func() {
		prev, had := t.reg.Get(name)
		t.reg.Add(name, st)
		if had {
			return func() { t.reg.Add(name, prev) }
		}
		return func() { t.reg.Remove(name) }
	}
}

func (t *Tracker) regDel(name string) effect {
	t.regTouch(name)
	return func() func() {
		prev, had := t.reg.Get(name)
		if !had {
			return nil
		}
		t.reg.Remove(name)
		return func() { t.reg.Add(name, prev) }
	}
}

// clientUnnamed sets the client's unnamed statement (nil for none).
func (t *Tracker) clientUnnamed(st *Statement) effect {
	t.regTouch("")
	return func() func() {
		prev := t.reg.unnamed
		if prev == st {
			return nil
		}
		t.reg.unnamed = st
		return func() { t.reg.unnamed = prev }
	}
}

// serverUnnamed sets the server name of the server's unnamed statement
// ("" for none).
func (t *Tracker) serverUnnamed(name string) effect {
	t.touch("")
	return func() func() {
		prev := t.srv.unnamed
		if prev == name {
			return nil
		}
		t.srv.unnamed = name
		return func() { t.srv.unnamed = prev }
	}
}

// dropUnnamed is clientUnnamed(nil) and serverUnnamed(""), what every
// simple query does: made once per Tracker, and shared, as effects keep
// no state of their own until applied.
func (t *Tracker) dropUnnamed() []effect {
	t.regTouch("")
	t.touch("")
	if t.drop == nil {
		t.drop = []effect{t.clientUnnamed(nil), t.serverUnnamed("")}
	}
	return t.drop
}

// srvAdd records name as prepared on the server; room was made for it.
func (t *Tracker) srvAdd(name string) effect {
	t.touch(name)
	return func() func() {
		if t.srv.Has(name) {
			return nil
		}
		t.srv.insert(name)
		return func() { t.srv.Remove(name) }
	}
}

// srvDel records that the server closed name.
func (t *Tracker) srvDel(name string) effect {
	t.touch(name)
	return func() func() {
		v, ok := t.srv.get(name)
		if !ok {
			return nil
		}
		t.srv.Remove(name)
		return func() { t.srv.restore(v) }
	}
}

// srvClear records that the server dropped every named statement.
func (t *Tracker) srvClear() effect {
	t.clearedAt = t.group
	return func() func() {
		saved, unnamed := t.srv.snapshot(), t.srv.unnamed
		t.srv.Clear()
		t.srv.unnamed = unnamed // DEALLOCATE ALL keeps the unnamed statement
		return func() { t.srv.restoreAll(saved) }
	}
}

// regClear forgets every statement of the client, the unnamed one too (a
// simple query drops it anyway).
func (t *Tracker) regClear() effect {
	t.regClearedAt = t.group
	return func() func() {
		saved, unnamed := maps.Clone(t.reg.m), t.reg.unnamed
		t.reg.Clear()
		return func() { t.reg.m, t.reg.unnamed = saved, unnamed }
	}
}

// regClearNamed forgets the client's named statements: DEALLOCATE ALL
// and DISCARD ALL run by Execute leave the unnamed one.
func (t *Tracker) regClearNamed() effect {
	t.regClearedAt = t.group
	return func() func() {
		saved := maps.Clone(t.reg.m)
		clear(t.reg.m)
		return func() { t.reg.m = saved }
	}
}

// portalSet records what running the portal does to prepared statements
// (nothing: forgotten).
func (t *Tracker) portalSet(portal string, act action) effect {
	grp := t.group
	return func() func() {
		prev, had := t.portals[portal]
		switch {
		case act != (action{}):
			t.portals[portal] = portalAction{act, grp}
		case !had:
			return nil
		default:
			delete(t.portals, portal)
		}
		if had {
			return func() { t.portals[portal] = prev }
		}
		return func() { delete(t.portals, portal) }
	}
}

func (t *Tracker) touch(name string)    { t.touched[name] = t.group }
func (t *Tracker) regTouch(name string) { t.regTouched[name] = t.group }

// tentative reports whether name's presence on the server depends on a
// message of an earlier Sync group still unanswered: if that group fails,
// the server has what the books say it has not, or lacks what they say it
// has, and messages rewritten now must not rely on either.
func (t *Tracker) tentative(name string) bool {
	return t.unsettled(t.touched, t.clearedAt, name)
}

// regTentative is tentative for the client's own name: whether the client
// has it depends on an earlier Sync group still unanswered, so a message
// naming it must wait (ErrWait). The current group needs no wait: after a
// failure in it the server skips the rest.
func (t *Tracker) regTentative(name string) bool {
	return t.unsettled(t.regTouched, t.regClearedAt, name)
}

func (t *Tracker) unsettled(touched map[string]int, clearedAt int, name string) bool {
	oldest := -1
	for _, e := range t.q {
		if e.typ != copyEnd {
			oldest = e.grp
			break
		}
	}
	if oldest < 0 {
		return false // nothing awaited
	}
	g, ok := touched[name]
	if !ok || g < clearedAt {
		g = clearedAt
	}
	return g >= oldest && g < t.group
}

// settle forgets what no pending message can revert any more.
func (t *Tracker) settle() {
	if len(t.q) == 0 {
		if len(t.touched) > 0 {
			clear(t.touched)
		}
		if len(t.regTouched) > 0 {
			clear(t.regTouched)
		}
		t.clearedAt, t.regClearedAt = -1, -1
	}
}
