package stmt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// exchange passes one batch through tr to backend m and m's answers back,
// returning what the server got (parts split by a wait for answers joined
// with " | ") and what the client saw.
func exchange(t testing.TB, tr *Tracker, m *modelBackend, msgs ...pgproto3.FrontendMessage) (sent string, seen []string) {
	t.Helper()
	batch := fe(msgs...)
	frames := frameBatch(t, batch)
	var parts []string
	base := 0
	for len(frames) > 0 {
		tr.BeginBatch()
		cut := len(frames)
		for i, f := range frames {
			err := tr.Client(f.Type, f.Body, f.Off-base, f.Total())
			if errors.Is(err, ErrWait) {
				cut = i
				break
			}
			if err != nil {
				t.Fatalf("Client(%q): %v", f.Type, err)
			}
		}
		end := len(batch)
		if cut < len(frames) {
			end = frames[cut].Off
		}
		out := bytes.Clone(tr.ApplyBatch(batch[base:end]))
		if cut < len(frames) {
			out = append(out, flush...)
		}
		parts = append(parts, describeStream(t, out))
		m.feed(out)
		seen = append(seen, answer(t, tr, m)...)
		frames, base = frames[cut:], end
	}
	if tr.Pending() != 0 {
		t.Fatalf("%d answers pending after %v", tr.Pending(), parts)
	}
	return strings.Join(parts, " | "), seen
}

// answer passes m's answers through tr and returns what the client saw.
func answer(t testing.TB, tr *Tracker, m *modelBackend) []string {
	t.Helper()
	ans := m.take()
	tr.BeginAnswers()
	off := 0
	for _, a := range splitMessages(t, ans) {
		if err := tr.Server(a.typ, a.body, off); err != nil {
			t.Fatalf("Server(%q): %v", a.typ, err)
		}
		off += 5 + len(a.body)
	}
	return messageTypes(t, tr.ApplyAnswers(ans))
}

var (
	srvOne = ServerName("SELECT 1", paramTypes())
	srvTwo = ServerName("SELECT 2", paramTypes())
)

func TestTrackerRewritesForTheServerItHolds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		before [][]pgproto3.FrontendMessage // batches run first, through the same tracker
		batch  []pgproto3.FrontendMessage
		sent   string
		seen   []string
	}{
		{"a Parse the server lacks goes under the server name, described for its shape", 3, nil,
			[]pgproto3.FrontendMessage{mParse("s1", "SELECT 1", 0), mSync},
			`P(` + srvOne + `,"SELECT 1",0) DS(` + srvOne + `) S`, []string{"1", "Z:I"}},
		{"a Parse of a statement the server holds parses it afresh", 3,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mParse("s2", "SELECT 1", 0), mSync},
			`CS(` + srvOne + `) P(` + srvOne + `,"SELECT 1",0) DS(` + srvOne + `) S`, []string{"1", "Z:I"}},
		{"a duplicate name is parsed as pgv_noop, then a Bind of pgv_noop fails with 42P05", 3,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mParse("s1", "SELECT 2", 0), mDescribe('S', "s1"), mSync},
			`P(pgv_noop,"SELECT 2",0) CS(pgv_noop) B(pgv_noop) DS(` + srvOne + `) S`, []string{"E:42P05", "Z:I"}},
		{"a duplicate name with a syntax error reports the syntax error, as PostgreSQL does", 3,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mParse("s1", "SELECT fail", 0), mSync},
			`P(pgv_noop,"SELECT fail",0) CS(pgv_noop) B(pgv_noop) S`, []string{"E:42601", "Z:I"}},
		{"a Bind and Describe of a client statement are renamed", 3,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mDescribe('S', "s1"), mBind("", "s1", 0), mExecute(""), mSync},
			`DS(` + srvOne + `) B(` + srvOne + `) E S`, []string{"t", "T", "2", "D", "C:SELECT 1", "Z:I"}},
		{"a Close of a client statement leaves the server's copy", 3,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mClose('S', "s1"), mBind("", "s1", 0), mSync},
			`CS(pgv_noop) B(s1) S`, []string{"3", "E:26000", "Z:I"}},
		{"portals and the unnamed statement pass unchanged", 3, nil,
			[]pgproto3.FrontendMessage{mParse("", "SELECT 1", 0), mBind("p1", "", 0), mDescribe('P', "p1"), mExecute("p1"), mClose('P', "p1"), mSync},
			`P(,"SELECT 1",0) B() DP(p1) E CP(p1) S`, []string{"1", "2", "T", "D", "C:SELECT 1", "3", "Z:I"}},
		{"unknown names reach the server as they are", 3, nil,
			[]pgproto3.FrontendMessage{mBind("", "nope", 0), mSync, mDescribe('S', "nope"), mSync},
			`B(nope) S DS(nope) S`, []string{"E:26000", "Z:I", "E:26000", "Z:I"}},
		{"pgvalve's own names fail as unknown ones, without reaching the server", 3,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mBind("", srvOne, 0), mSync},
			`B(pgv_noop) S`, []string{"E:26000", "Z:I"}},
		{"a full set closes the least recently used statement first", 1,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mParse("s2", "SELECT 2", 0), mSync},
			`CS(` + srvOne + `) P(` + srvTwo + `,"SELECT 2",0) DS(` + srvTwo + `) S`, []string{"1", "Z:I"}},
		{"a statement evicted earlier is prepared again, hidden, and its shape checked before its Bind", 1,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}, {mParse("s2", "SELECT 2", 0), mSync}},
			[]pgproto3.FrontendMessage{mBind("", "s1", 0), mExecute(""), mSync},
			`CS(` + srvTwo + `) P(` + srvOne + `,"SELECT 1",0) DS(` + srvOne + `) H | B(` + srvOne + `) E S`, []string{"2", "D", "C:SELECT 1", "Z:I"}},
		{"DEALLOCATE of a client statement drops the server's copy", 3,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}},
			[]pgproto3.FrontendMessage{mQuery("DEALLOCATE s1")},
			`Q("DEALLOCATE ` + srvOne + `")`, []string{"C:DEALLOCATE", "Z:I"}},
		{"DEALLOCATE of a client statement the server lacks does nothing there", 1,
			[][]pgproto3.FrontendMessage{{mParse("s1", "SELECT 1", 0), mSync}, {mParse("s2", "SELECT 2", 0), mSync}},
			[]pgproto3.FrontendMessage{mQuery("DEALLOCATE s1")},
			`Q("` + doNothing + `")`, []string{"C:DEALLOCATE", "Z:I"}},
		{"DEALLOCATE of pgvalve's own name fails without touching the server's statements", 3, nil,
			[]pgproto3.FrontendMessage{mQuery("DEALLOCATE " + srvOne)},
			`Q("DEALLOCATE pgv_refused")`, []string{"E:26000", "Z:I"}},
		{"after an error nothing up to Sync is answered", 3, nil,
			[]pgproto3.FrontendMessage{mParse("s1", "SELECT fail", 0), mBind("", "s1", 0), mExecute(""), mSync, mParse("", "SELECT 2", 0), mSync},
			`P(` + ServerName("SELECT fail", paramTypes()) + `,"SELECT fail",0) DS(` + ServerName("SELECT fail", paramTypes()) + `) B(` + ServerName("SELECT fail", paramTypes()) + `) E S P(,"SELECT 2",0) S`,
			[]string{"E:42601", "Z:I", "1", "Z:I"}},
		{"a Bind in the Sync group after a failed Parse of its name waits for that answer", 3, nil,
			[]pgproto3.FrontendMessage{mParse("s1", "SELECT fail", 0), mSync, mBind("", "s1", 0), mSync},
			`P(` + ServerName("SELECT fail", paramTypes()) + `,"SELECT fail",0) DS(` + ServerName("SELECT fail", paramTypes()) + `) S H | B(s1) S`,
			[]string{"E:42601", "Z:I", "E:26000", "Z:I"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, m, set := NewTracker(NewRegistry()), newModelBackend(), NewServerSet(tc.max)
			tr.Attach(set)
			for _, b := range tc.before {
				exchange(t, tr, m, b...)
			}
			sent, seen := exchange(t, tr, m, tc.batch...)
			if sent != tc.sent {
				t.Errorf("server got  %s\n        want %s", sent, tc.sent)
			}
			if !reflect.DeepEqual(seen, tc.seen) {
				t.Errorf("client saw %v, want %v", seen, tc.seen)
			}
		})
	}
}

func TestTrackerPreparesTheUnnamedStatementAgainOnAnotherServer(t *testing.T) {
	tr := NewTracker(NewRegistry())
	one, two := newModelBackend(), newModelBackend()
	tr.Attach(NewServerSet(3))
	exchange(t, tr, one, mParse("", "SELECT 1", 0), mDescribe('S', ""), mSync)
	tr.Attach(NewServerSet(3))
	sent, seen := exchange(t, tr, two, mBind("", "", 0), mExecute(""), mSync)
	if want := `P(,"SELECT 1",0) B() E S`; sent != want {
		t.Errorf("server got %s, want %s", sent, want)
	}
	if want := []string{"2", "D", "C:SELECT 1", "Z:I"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("client saw %v, want %v", seen, want)
	}
	if sent, _ := exchange(t, tr, two, mBind("", "", 0), mExecute(""), mSync); sent != "B() E S" {
		t.Errorf("the server has it now, yet got %s", sent)
	}
}

func TestTrackerLeavesUnchangedBatchesAlone(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(3))
	batch := fe(mParse("", "SELECT 1", 0), mBind("", "", 0), mExecute(""), mSync)
	tr.BeginBatch()
	for _, f := range frameBatch(t, batch) {
		if err := tr.Client(f.Type, f.Body, f.Off, f.Total()); err != nil {
			t.Fatal(err)
		}
	}
	if out := tr.ApplyBatch(batch); &out[0] != &batch[0] || len(out) != len(batch) {
		t.Fatalf("ApplyBatch copied a batch it did not change")
	}
	ans := []byte{'1', 0, 0, 0, 4, '2', 0, 0, 0, 4} // ParseComplete, BindComplete
	tr.BeginAnswers()
	for i, typ := range []byte{'1', '2'} {
		if err := tr.Server(typ, nil, 5*i); err != nil {
			t.Fatal(err)
		}
	}
	if out := tr.ApplyAnswers(ans); &out[0] != &ans[0] {
		t.Fatalf("ApplyAnswers copied answers it did not change")
	}
}

func TestTrackerServerRefusesAnswersItDidNotExpect(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(3))
	tr.BeginAnswers()
	for _, typ := range []byte{'N', 'A', 'S'} {
		if err := tr.Server(typ, nil, 0); err != nil {
			t.Fatalf("asynchronous %q: %v", typ, err)
		}
	}
	if err := tr.Server('Z', []byte{'I'}, 0); !errors.Is(err, ErrDesync) {
		t.Fatalf("Z with nothing pending: %v", err)
	}
	tr.BeginBatch()
	body := fe(mParse("", "SELECT 1", 0))[5:]
	if err := tr.Client('P', body, 0, 5+len(body)); err != nil {
		t.Fatal(err)
	}
	if err := tr.Server('2', nil, 0); !errors.Is(err, ErrDesync) {
		t.Fatalf("BindComplete answering a Parse: %v", err)
	}
}

// PostgreSQL answers a Parse, Bind, Describe or Close it cannot read with a
// recoverable ERROR and skips to Sync: the tracker sends such a message as
// it came, books nothing, and expects that answer.
func TestTrackerPassesMalformedMessagesToTheServerUnbooked(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  byte
		body string
	}{
		{"a Parse without its parameter count", 'P', "s1\x00SELECT 1\x00"},
		{"a Bind without its statement name", 'B', "\x00s1"},
		{"a Describe of an unknown kind", 'D', "Xs1\x00"},
		{"a Close without its NUL", 'C', "Ss1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, set := NewRegistry(), NewServerSet(3)
			tr := NewTracker(reg)
			tr.Attach(set)
			tr.BeginBatch()
			if err := tr.Client(tc.typ, []byte(tc.body), 0, 5+len(tc.body)); err != nil {
				t.Fatalf("Client = %v, want the message passed on", err)
			}
			span := append([]byte{tc.typ, 0, 0, 0, byte(4 + len(tc.body))}, tc.body...)
			if got := tr.ApplyBatch(span); !bytes.Equal(got, span) {
				t.Fatalf("sent %q, want it unchanged", got)
			}
			if reg.Len() != 0 || set.Len() != 0 || tr.Pending() != 1 {
				t.Fatalf("booked %d statements, %d on the server, %d answers awaited; want 0, 0, 1", reg.Len(), set.Len(), tr.Pending())
			}
			tr.BeginAnswers()
			answer, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "08P01", Message: "bad"}).Encode(nil)
			if err := tr.Server('E', answer[5:], 0); err != nil || tr.Pending() != 0 {
				t.Fatalf("the server's error: %v, %d answers still awaited", err, tr.Pending())
			}
		})
	}
}

// By design a deferred Parse is not checked: its query's error comes
// back at each use, not at Parse as on a dedicated server.
func TestDeferredParseReportsQueryErrorsAtFirstUse(t *testing.T) {
	tr := NewTracker(NewRegistry())
	out, err := tr.Defer([]Message{{Type: 'P', Body: fe(mParse("s1", "SELECT fail", 0))[5:]}, {Type: 'S'}}, nil)
	if err != nil || !reflect.DeepEqual(messageTypes(t, out), []string{"1", "Z:I"}) {
		t.Fatalf("Defer = %v %v", messageTypes(t, out), err)
	}
	tr.Attach(NewServerSet(3))
	m := newModelBackend()
	for range 2 {
		if _, seen := exchange(t, tr, m, mBind("", "s1", 0), mExecute(""), mSync); !reflect.DeepEqual(seen, []string{"E:42601", "Z:I"}) {
			t.Fatalf("use of the deferred statement: %v", seen)
		}
	}
}

// PostgreSQL looks the statement up before reading the rest of a Bind, so
// a short one would still fail with 26000; a strict parser must accept it.
func TestTheBindOfPgvNoopIsAWholeBind(t *testing.T) {
	var b pgproto3.Bind
	msg := appendBindNoop(nil)
	if err := b.Decode(msg[5:]); err != nil || b.PreparedStatement != noopName || int(binary.BigEndian.Uint32(msg[1:])) != len(msg)-1 {
		t.Fatalf("the Bind of pgv_noop does not decode: %+v %v", b, err)
	}
}
