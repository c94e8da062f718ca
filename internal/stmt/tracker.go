package stmt

import (
	"errors"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// noopName is never prepared: a Close of it is a no-op the server still
// answers, which pgvalve uses to keep its own answers in the server's order,
// and a Bind of it fails, which pgvalve uses to make the server fail and
// skip to Sync where PostgreSQL would have (the error is rewritten).
const noopName = serverPrefix + "noop"

// ErrWait says a client message cannot be rewritten before the server has
// answered everything sent so far: what it means depends on whether an
// earlier message of a pipeline fails, or on how the server describes a
// statement just prepared. The caller sends the batch up to the message
// (with what the tracker added before it), then a Flush, waits until
// Pending is 0, and offers the same message again in a new batch.
var ErrWait = errors.New("stmt: the server's answers are needed first")

// Tracker follows one client's conversation with the server it holds now.
// It rewrites client messages (Client) and the server's answers (Server).
// The caller serialises calls; the two directions keep separate buffers so
// Apply* need no lock.
//
// A message's effects on the Registry and ServerSet are made when it is
// sent, so the rest of a pipeline is rewritten as if it succeeded; they are
// reverted when the server fails the message or skips it after an earlier
// error (until the next Sync): see effects.go. A message whose meaning
// depends on whether an earlier Sync group failed waits for it (ErrWait).
type Tracker struct {
	reg *Registry
	srv *ServerSet

	q []entry // answers expected, oldest first
	// qbase is q's array from its start: q slides along it (see pop).
	qbase []entry
	// lastStmt is the server statement of the latest Bind, for Execute.
	lastStmt string
	// lastRenames are the server names the latest Bind's portal uses
	// for the client's (a Parse-made EXECUTE), for its Execute's errors.
	lastRenames [][2]string
	// portals are the client's portals whose Execute drops prepared
	// statements (bound to a DEALLOCATE or DISCARD ALL).
	portals map[string]portalAction
	// skipping: the server failed a message and skips everything up to a
	// Sync the client has not sent yet; nothing it skips gets an answer.
	skipping bool
	status   byte // the server's transaction status at its last ReadyForQuery
	// ran: the current Sync group has run something (Execute, Query,
	// FunctionCall), which may have changed the status since.
	ran bool
	// copyIn: the server is in COPY FROM STDIN and the client has not
	// ended it; the server ignores a Sync sent now.
	copyIn bool
	// group counts the Sync groups sent (a simple Query ends one too);
	// touched is the group that last changed each server statement ("" for
	// the unnamed one), clearedAt the last to drop all; regTouched and
	// regClearedAt are the same for the client's names: see tentative.
	group        int
	touched      map[string]int
	clearedAt    int
	regTouched   map[string]int
	regClearedAt int
	// waitedFor is the server statement prepared afresh before the last
	// ErrWait, so the message offered again uses it as described.
	waitedFor string

	in, outEdits wire.Edits
	keep         map[string]bool // statements the batch being rewritten needs
	drop         []effect        // see dropUnnamed; never changed in place
	recent       *recentParse    // see recentStatement; nil until a first plain Parse
}

// entry is the answer expected to one message sent to the server. It is
// copied in and out of the queue, so what few messages need is in x.
type entry struct {
	typ   byte   // message answered: P B D E C S Q F, or copyEnd
	descS bool   // a Describe of a statement: 't' comes before 'T'/'n'
	hide  bool   // pgvalve's own message: its answer is dropped
	grp   int    // the Sync group it belongs to
	stmt  string // server statement this message uses (B, D, E), for stale plans
	name  string // the client's name of that statement (B, D)
	x     *extra
	// ok are its effects if it succeeds, made when it is sent; failed
	// replaces them if the server runs it and it fails (a skipped message
	// has none); undo reverts those made.
	ok, failed []effect
	undo       []func()
}

// extra is what only some entries need.
type extra struct {
	// answer replaces the message that completes the answer (pgvalve
	// answered for the server).
	answer []byte
	// errAs replaces the server's error when it has the expected code:
	// pgvalve made the message fail on purpose, as PostgreSQL would have.
	errAs *errRewrite
	tag   string // CommandComplete tag the client sees instead (a rewritten DEALLOCATE)
	reset bool   // a DEALLOCATE ALL or DISCARD ALL already applied when sent
	// items are the query's statements that change the client's
	// statements, made when their CommandComplete comes; done counts
	// those come so far. renames are the server names it uses for the
	// client's, for its errors.
	items   []queryItem
	done    int
	renames [][2]string
	// prepares and closes name the server statement pgvalve's own Parse
	// or Close is for. describes is the one this hidden Describe learns
	// the shape of, for shapeOf too when it has none yet; shape, desc and
	// rows accumulate its answer.
	prepares, closes, describes string
	shapeOf                     *Statement
	shape                       uint64
	desc                        []byte
	rows                        bool
}

// more returns e's extra, made on first use.
func (e *entry) more() *extra {
	if e.x == nil {
		e.x = &extra{}
	}
	return e.x
}

// extra0 is the zero extra, what an entry without one reads.
var extra0 extra

// get returns e's extra, or the zero one.
func (e *entry) get() *extra {
	if e.x == nil {
		return &extra0
	}
	return e.x
}

// errRewrite is the error a client sees instead of the server's error
// with code when (and naming about, when set): the answer PostgreSQL would
// have given it.
type errRewrite struct{ when, code, msg, about string }

// NewTracker returns a tracker over a client's registry.
func NewTracker(reg *Registry) *Tracker {
	return &Tracker{reg: reg, keep: make(map[string]bool), touched: make(map[string]int),
		regTouched: make(map[string]int), portals: make(map[string]portalAction), status: 'I', clearedAt: -1, regClearedAt: -1}
}

// Attach starts tracking on a newly leased server with its statements.
func (t *Tracker) Attach(srv *ServerSet) {
	t.srv = srv
	t.q = t.qbase[:0]
	t.lastStmt, t.lastRenames, t.waitedFor = "", nil, ""
	clear(t.portals)
	t.status, t.copyIn, t.skipping = 'I', false, false
	t.settle()
}

// Shed drops the space the tracker grew for the messages it rewrote and
// the answers it expected, if it expects none now (a client about to
// park): what it knows of the client's statements stays.
func (t *Tracker) Shed() {
	if len(t.q) != 0 {
		return
	}
	t.q, t.qbase = nil, nil
	t.in, t.outEdits = wire.Edits{}, wire.Edits{}
}

// Pending reports answers still expected.
func (t *Tracker) Pending() int {
	n := len(t.q)
	for _, e := range t.q {
		if e.typ == copyEnd {
			n--
		}
	}
	return n
}

// BeginBatch starts rewriting a batch of client messages.
func (t *Tracker) BeginBatch() {
	t.in.Reset()
	clear(t.keep)
}

// ApplyBatch returns the batch to send: span with the rewrites made.
func (t *Tracker) ApplyBatch(span []byte) []byte {
	return t.in.Apply(span)
}

// Client rewrites one client message of type typ, n bytes long with its
// header, at offset off in the batch. body is nil for a message bigger
// than the read buffer, which streams through: only types whose
// bookkeeping needs no body stream (see Decoded), and a Query that long is
// never a DEALLOCATE or DISCARD. It returns ErrWait when the message must
// wait for the server's answers; nothing of it is booked then.
func (t *Tracker) Client(typ byte, body []byte, off, n int) error {
	if t.skipping {
		// The server skips it unanswered; only Sync ends that.
		if typ == 'S' {
			t.skipping = false
			t.push(entry{typ: 'S'})
		}
		return nil
	}
	var err error
	switch typ {
	case 'P':
		err = t.parse(body, off, n)
	case 'B':
		err = t.bind(body, off, n)
	case 'D':
		err = t.describe(body, off, n)
	case 'C':
		err = t.close(body, off, n)
	case 'E':
		err = t.execute(body, off, n)
	case 'Q':
		err = t.query(body, off, n)
	case 'S':
		if !t.copyIn {
			t.push(entry{typ: 'S'})
		}
	case 'F':
		t.push(entry{typ: 'F'})
	case 'c', 'f':
		t.endCopy()
	}
	if err != nil && errors.Is(err, ErrMalformed) {
		// PostgreSQL reads it, answers a recoverable 08P01 ERROR and skips
		// to Sync: it goes as sent, with nothing booked.
		t.push(entry{typ: typ})
		err = nil
	}
	return err
}

// push makes a message's effects and expects its answer.
func (t *Tracker) push(e entry) {
	e.grp = t.group
	t.apply(&e)
	t.enqueue(e)
	switch e.typ {
	case 'Q', 'S':
		t.group++
		t.ran = false
	case 'E', 'F':
		t.ran = true
	}
}

// enqueue appends e to q, keeping qbase on q's array when it grows.
func (t *Tracker) enqueue(e entry) {
	if len(t.q) == 0 {
		t.q = t.qbase[:0]
	}
	t.q = append(t.q, e)
	if cap(t.q) > cap(t.qbase) {
		t.qbase = t.q[:0]
	}
}

// copyEnd marks in q where the client ended a COPY (CopyDone or CopyFail):
// Syncs sent before it during a COPY get no answer, those after it do.
// It expects no answer and is dropped when it reaches the head. It is
// the CopyDone type, as wire.DropCopySyncs expects.
const copyEnd = 'c'

func (t *Tracker) endCopy() {
	t.copyIn = false
	if n := len(t.q); n > 0 && t.q[n-1].typ != copyEnd {
		t.enqueue(entry{typ: copyEnd, grp: t.group})
	}
}

// copyStarted handles a CopyInResponse to the Execute or Query at the
// head: every message sent before it is answered, so the Syncs queued up
// to the client's end of the COPY were sent during it and are ignored.
func (t *Tracker) copyStarted() {
	rest, open := wire.DropCopySyncs(t.q[1:], func(e entry) byte { return e.typ })
	t.q = t.q[:1+len(rest)]
	t.copyIn = open
}

// FollowsSQLPrepare reports whether the tracker takes over SQL-level
// PREPARE, EXECUTE and DEALLOCATE: a client's SQL PREPARE then joins its
// statements and follows it to every server, so it leaves nothing on the
// server it ran on that pins the client there.
func (t *Tracker) FollowsSQLPrepare() bool { return t != nil }
