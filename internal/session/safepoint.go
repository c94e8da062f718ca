package session

import "github.com/pgvalve/pgvalve/internal/wire"

// txState is where a server stands in the protocol, as far as the relay can
// tell from the messages it forwards. The relay may hand the server to
// another client only at a safe point. Methods are pure so the rules are
// unit-tested on their own; callers hold the session's lock.
type txState struct {
	// pending counts requests forwarded (Query, Sync, FunctionCall) whose
	// ReadyForQuery has not come back. Each yields exactly one, except a
	// Sync the server reads during COPY FROM STDIN, which it ignores.
	pending int
	// awaiting lists, oldest first, what pending counts: 'S' for a Sync,
	// 'R' for a Query or FunctionCall, with 'c' where the client ended a
	// COPY (CopyDone or CopyFail) in between, which tells the Syncs sent
	// during a COPY from those sent after it. head is its first live item.
	awaiting []byte
	head     int
	// copyIn: the server said it is in COPY FROM STDIN, and the client has
	// not ended the COPY since; a Sync sent now is ignored by the server.
	copyIn bool
	// copyByExecute: that COPY was started by an Execute, so the client's
	// CopyDone or CopyFail does not end a request: its Sync will.
	copyByExecute bool
	// lastSafe says the last client message forwarded ends a request:
	// Sync, Query, FunctionCall, CopyDone or CopyFail, and was forwarded
	// whole. Anything else (Parse, Bind, Execute without Sync, CopyData)
	// leaves the server mid-request.
	lastSafe bool
	// status is the transaction status of the last ReadyForQuery.
	status byte
	// errored: the server sent an ErrorResponse since its last
	// ReadyForQuery, so the oldest request has its error already.
	errored bool
}

// freshState is a server just leased: idle, outside a transaction.
func freshState() txState { return txState{lastSafe: true, status: 'I'} }

// requestEnds reports whether a client message of type typ completes a
// request, and whether it asks for a ReadyForQuery.
func requestEnds(typ byte) (ends, wantsReady bool) {
	switch typ {
	case 'Q', 'S', 'F':
		return true, true
	case 'c', 'f':
		return true, false
	}
	return false, false
}

// counted reports whether the relay must show txState a client message of
// type typ: requests and the ends of a COPY.
func counted(typ byte) bool {
	switch typ {
	case 'Q', 'S', 'F', 'c', 'f':
		return true
	}
	return false
}

// forwarded records a batch of client messages sent to the server: types
// are those of its messages that counted reports, in order; last is the
// type of its last message, and partial says the batch ends inside that
// message (the rest of a message bigger than the buffer follows later).
func (t *txState) forwarded(types []byte, last byte, partial bool) {
	for _, typ := range types {
		switch typ {
		case 'S':
			if !t.copyIn {
				t.await('S')
			}
		case 'Q', 'F':
			t.await('R')
		case 'c', 'f':
			t.copyIn = false
			if n := len(t.awaiting); n > t.head && t.awaiting[n-1] != 'c' {
				t.awaiting = append(t.awaiting, 'c')
			}
		}
	}
	t.lastSafe, _ = requestEnds(last)
	if (last == 'c' || last == 'f') && t.copyByExecute {
		t.lastSafe = false // the Execute's answer comes, then the Sync's
	}
	t.lastSafe = t.lastSafe && !partial
}

func (t *txState) await(item byte) {
	if t.head > 0 && t.head == len(t.awaiting) {
		t.awaiting, t.head = t.awaiting[:0], 0
	}
	t.awaiting = append(t.awaiting, item)
	t.pending++
}

// copyStarted records a CopyInResponse. Every request before the COPY's
// own is answered by now, so the Syncs awaited up to the client's end of
// the COPY were sent during it: the server ignores them.
func (t *txState) copyStarted() {
	// A COPY of a simple Query is its own request, awaited first.
	t.copyByExecute = t.head == len(t.awaiting) || t.awaiting[t.head] != 'R'
	rest, open := wire.DropCopySyncs(t.awaiting[t.head:], func(item byte) byte { return item })
	t.pending -= len(t.awaiting) - t.head - len(rest)
	t.awaiting = t.awaiting[:t.head+len(rest)]
	t.copyIn = open
}

// ready records a ReadyForQuery from the server.
func (t *txState) ready(status byte) {
	for t.head < len(t.awaiting) && t.awaiting[t.head] == 'c' {
		t.head++
	}
	if t.head < len(t.awaiting) {
		t.head++
		t.pending--
	}
	t.status = status
	t.errored = false
	t.copyByExecute = false // whatever COPY there was is over
}

// idle reports whether the server is waiting for the client: every request
// answered and none half sent.
func (t txState) idle() bool { return t.pending == 0 && t.lastSafe }

// safe reports whether the server may go to another client: idle and
// outside a transaction.
func (t txState) safe() bool { return t.idle() && t.status == 'I' }

// hold says what a client does with the server it holds, for SHOW HOLDERS.
func (t txState) hold() Hold {
	switch {
	case t.copyIn:
		return HoldCopy
	case t.pending > 0:
		return HoldRunning
	case !t.lastSafe:
		return HoldPreparedSync
	case t.status != 'I':
		return HoldIdleInTx
	}
	return HoldIdle
}
