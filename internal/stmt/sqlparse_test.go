package stmt

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// sendBatch passes a batch of client messages through tr and returns what
// the server gets, one word per message: P:name:query, B:statement,
// D:S:name, C:S:name, E, S.
func sendBatch(t *testing.T, tr *Tracker, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	batch := fe(msgs...)
	tr.BeginBatch()
	off := 0
	for _, m := range splitMessages(t, batch) {
		if err := tr.Client(m.typ, m.body, off, 5+len(m.body)); err != nil {
			t.Fatalf("%c: %v", m.typ, err)
		}
		off += 5 + len(m.body)
	}
	var words []string
	for _, m := range splitMessages(t, tr.ApplyBatch(batch)) {
		w := string(m.typ)
		switch m.typ {
		case 'P':
			p, _ := DecodeParse(m.body)
			w += ":" + p.Name + ":" + p.Query
		case 'B':
			name, _, _, _ := BindStatement(m.body)
			w += ":" + name
		case 'D', 'C':
			kind, name, _ := Target(m.body)
			w += ":" + string(kind) + ":" + name
		}
		words = append(words, w)
	}
	return words
}

// sqlPrepared makes name the client's by a simple-query PREPARE, answered.
func sqlPrepared(t *testing.T, tr *Tracker, name, rest string) *Statement {
	t.Helper()
	sendQuery(t, tr, "PREPARE "+name+rest)
	answerWith(t, tr, cc("PREPARE"), ready)
	st, ok := tr.reg.Get(name)
	if !ok {
		t.Fatalf("%s is not the client's", name)
	}
	return st
}

func TestAParsedExecuteRunsTheServerCopyPreparedBeforeIt(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	p := sqlPrepared(t, tr, "answer", " AS SELECT 42")
	tr.Attach(NewServerSet(10)) // another server, which lacks it
	got := strings.Join(sendBatch(t, tr, mParse("", "execute answer", 0), mBind("", "", 0), mExecute(""), mSync), " ")
	want := "P:" + p.Server + ":SELECT 42 D:S:" + p.Server + " P::execute " + p.Server + " B: E S"
	if got != want {
		t.Fatalf("sent %s\nwant %s", got, want)
	}
}

func TestAParsedExecuteOfANameTheClientLacksFailsNamingIt(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	got := strings.Join(sendBatch(t, tr, mParse("", "EXECUTE nope(1)", 0), mBind("", "", 0), mExecute(""), mSync), " ")
	if got != "P::EXECUTE "+refusedName+"(1) B: E S" {
		t.Fatalf("sent %s", got)
	}
	seen := answerWith(t, tr, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "26000", Message: `prepared statement "` + refusedName + `" does not exist`}, ready)
	if strings.Join(seen, " ") != "1 2 E Z" {
		t.Fatalf("the client saw %v", seen)
	}
	sendBatch(t, tr, mParse("", "EXECUTE nope", 0), mBind("", "", 0), mExecute(""), mSync)
	answerWith(t, tr, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{})
	buf, _ := (&pgproto3.ErrorResponse{Code: "26000", Message: `prepared statement "` + refusedName + `" does not exist`}).Encode(nil)
	tr.BeginAnswers()
	if err := tr.Server('E', buf[5:], 0); err != nil {
		t.Fatal(err)
	}
	out := splitMessages(t, tr.ApplyAnswers(buf))
	if len(out) != 1 || out[0].String() != `E:26000 "prepared statement \"nope\" does not exist"` {
		t.Fatalf("the client saw %v", out)
	}
}

func TestABindOfAParsedExecuteRunsWhatItsNameIsNow(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	sqlPrepared(t, tr, "a", " AS SELECT 1")
	sendBatch(t, tr, mParse("s", "EXECUTE a", 0), mSync)
	answerWith(t, tr, &pgproto3.ParseComplete{}, &pgproto3.ParameterDescription{}, &pgproto3.NoData{}, ready)
	sendQuery(t, tr, "DEALLOCATE a")
	answerWith(t, tr, cc("DEALLOCATE"), ready)
	now := sqlPrepared(t, tr, "a", " AS SELECT 2")
	again := ServerName("EXECUTE "+now.Server, []byte{0, 0})
	got := strings.Join(sendBatch(t, tr, mBind("", "s", 0), mExecute(""), mSync), " ")
	if want := "P:" + again + ":EXECUTE " + now.Server + " D:S:" + again + " B:" + again + " E S"; got != want {
		t.Fatalf("sent %s\nwant %s", got, want)
	}
}

func TestAParsedPrepareIsTheClientsOnceItRuns(t *testing.T) {
	tr := NewTracker(NewRegistry())
	srv := NewServerSet(10)
	tr.Attach(srv)
	server := ServerName(" as SELECT 7", []byte("PREPARE"))
	got := strings.Join(sendBatch(t, tr, mParse("", "prepare p as SELECT 7", 0), mBind("", "", 0), mExecute(""), mSync), " ")
	if got != "P::prepare "+server+" as SELECT 7 B: E S" {
		t.Fatalf("sent %s", got)
	}
	answerWith(t, tr, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, cc("PREPARE"), ready)
	if _, ok := tr.reg.Get("p"); !ok || !srv.Has(server) {
		t.Fatalf("after it ran: client has p %v, server has its copy %v", ok, srv.Has(server))
	}
	sendBatch(t, tr, mParse("", "PREPARE p AS SELECT 8", 0), mBind("", "", 0), mExecute(""), mSync)
	if errAs := tr.q[2].get().errAs; errAs == nil || errAs.code != "42P05" {
		t.Fatalf("PREPARE of a name the client has fails with %+v", errAs)
	}
}

func TestAParseOfAnExecuteIsNotDeferred(t *testing.T) {
	tr := NewTracker(NewRegistry())
	batch := []Message{{'P', fe(mParse("s", "EXECUTE a", 0))[5:]}, {'S', nil}}
	if tr.Deferrable(batch) {
		t.Fatal("a Parse of EXECUTE is deferred: what it names is read when it is parsed")
	}
}

func TestABindOfAParsedExecuteMakesTheCopyItRunsAgainAfterItWasEvicted(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(1))
	a := sqlPrepared(t, tr, "a", " AS SELECT 1")
	sendBatch(t, tr, mParse("", "EXECUTE a", 0), mSync)
	answerWith(t, tr, &pgproto3.ParseComplete{}, ready)
	sendBatch(t, tr, mParse("q", "SELECT 2", 0), mSync) // evicts a's copy
	answerWith(t, tr, &pgproto3.CloseComplete{}, &pgproto3.ParseComplete{}, &pgproto3.ParameterDescription{},
		&pgproto3.RowDescription{}, ready)
	got := strings.Join(sendBatch(t, tr, mBind("", "", 0), mExecute(""), mSync), " ")
	if !strings.Contains(got, "P:"+a.Server+":SELECT 1 D:S:"+a.Server) || !strings.HasSuffix(got, " B: E S") {
		t.Fatalf("sent %s", got)
	}
}

func TestAParsedExecuteOfATypedStatementRunsItsPrepareFirst(t *testing.T) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(10))
	k := sqlPrepared(t, tr, "k", "(int) AS SELECT $1 + 1")
	tr.Attach(NewServerSet(10)) // another server, which lacks it
	got := strings.Join(sendBatch(t, tr, mParse("", "EXECUTE k(1)", 0), mBind("", "", 0), mExecute(""), mSync), " ")
	want := "P::PREPARE " + k.Server + "(int) AS SELECT $1 + 1 B:" + " E C:P:" + sqlPortal + " P::EXECUTE " + k.Server + "(1) B: E S"
	if got != want {
		t.Fatalf("sent %s\nwant %s", got, want)
	}
	seen := answerWith(t, tr, &pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, cc("PREPARE"), &pgproto3.CloseComplete{},
		&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.DataRow{}, cc("EXECUTE"), ready)
	if strings.Join(seen, " ") != "1 2 D C:EXECUTE Z" {
		t.Fatalf("the client saw %v", seen)
	}
	if !tr.srv.Has(k.Server) {
		t.Fatal("the server's copy is not booked")
	}
}

func TestTextNamesPreparedAgreesWithNamesPrepared(t *testing.T) {
	for _, q := range []string{"select 1", "EXECUTE a", "explain execute a", "xPrEpArE", "DEALLOCATE x", "dealloc", "prepar", "ée execute"} {
		if textNamesPrepared(q) != namesPrepared([]byte(q)) {
			t.Errorf("%q: %v, namesPrepared says %v", q, textNamesPrepared(q), namesPrepared([]byte(q)))
		}
	}
}
