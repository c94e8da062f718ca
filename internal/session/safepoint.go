package session

// txState is where a server stands in the protocol, as far as the relay can
// tell from the messages it forwards. The relay may hand the server to
// another client only at a safe point. Methods are pure so the rules are
// unit-tested on their own; callers hold the session's lock.
type txState struct {
	// pending counts requests forwarded (Query, Sync, FunctionCall) whose
	// ReadyForQuery has not come back. Each yields exactly one.
	pending int
	// lastSafe says the last client message forwarded ends a request:
	// Sync, Query, FunctionCall, CopyDone or CopyFail. Anything else (Parse,
	// Bind, Execute without Sync, CopyData) leaves the server mid-request.
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

// forwarded records a batch of client messages sent to the server:
// requests is how many want a ReadyForQuery, last is the type of the last,
// and partial says the batch ends inside that message (the rest of a
// message bigger than the buffer follows in later batches).
func (t *txState) forwarded(requests int, last byte, partial bool) {
	t.pending += requests
	t.lastSafe, _ = requestEnds(last)
	t.lastSafe = t.lastSafe && !partial
}

// ready records a ReadyForQuery from the server.
func (t *txState) ready(status byte) {
	t.pending--
	t.status = status
	t.errored = false
}

// idle reports whether the server is waiting for the client: every request
// answered and none half sent.
func (t txState) idle() bool { return t.pending == 0 && t.lastSafe }

// safe reports whether the server may go to another client: idle and
// outside a transaction.
func (t txState) safe() bool { return t.idle() && t.status == 'I' }
