package stmt

import (
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// BenchmarkTrackerPreparedTransaction is the tracker's share of one
// pgbench -M prepared transaction on a server that holds the statement:
// Bind, Execute, Sync rewritten, and BindComplete, DataRow,
// CommandComplete, ReadyForQuery matched.
func BenchmarkTrackerPreparedTransaction(b *testing.B) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(100))
	m := newModelBackend()
	exchange(b, tr, m, mParse("P0_1", "SELECT 1", 1), mDescribe('S', "P0_1"), mSync)
	benchTransaction(b, tr, fe(mBind("", "P0_1", 1), mExecute(""), mSync),
		&pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte("1")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// BenchmarkTrackerSimpleTransaction is the tracker's share of one pgbench
// select-only transaction in the simple protocol.
func BenchmarkTrackerSimpleTransaction(b *testing.B) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(100))
	benchTransaction(b, tr, fe(mQuery("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;")),
		&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4}}},
		&pgproto3.DataRow{Values: [][]byte{[]byte("0")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// BenchmarkTrackerUnnamedTransaction is the tracker's share of one pgbench
// -M extended transaction: the same text parsed as the unnamed statement,
// bound, executed and synced every time.
func BenchmarkTrackerUnnamedTransaction(b *testing.B) {
	tr := NewTracker(NewRegistry())
	tr.Attach(NewServerSet(100))
	benchTransaction(b, tr, fe(mParse("", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", 0),
		mBind("", "", 1), mExecute(""), mSync),
		&pgproto3.ParseComplete{}, &pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte("0")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
}

// benchTransaction has tr rewrite batch and match its answers, per op.
func benchTransaction(b *testing.B, tr *Tracker, batch []byte, answered ...pgproto3.BackendMessage) {
	frames := frameBatch(b, batch)
	answers := fe2(answered...)
	ans := splitMessages(b, answers)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tr.BeginBatch()
		for _, f := range frames {
			if err := tr.Client(f.Type, f.Body, f.Off, f.Total()); err != nil {
				b.Fatal(err)
			}
		}
		_ = tr.ApplyBatch(batch)
		tr.BeginAnswers()
		off := 0
		for _, a := range ans {
			if err := tr.Server(a.typ, a.body, off); err != nil {
				b.Fatal(err)
			}
			off += 5 + len(a.body)
		}
		_ = tr.ApplyAnswers(answers)
	}
}

func fe2(msgs ...pgproto3.BackendMessage) []byte {
	var out []byte
	for _, m := range msgs {
		out, _ = m.Encode(out)
	}
	return out
}
