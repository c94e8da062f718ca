package stmt

import (
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The model is the reference the Tracker is checked against, so it gets
// checks of its own against what PostgreSQL answers.
func TestModelBackendAnswersAsPostgres(t *testing.T) {
	for _, tc := range []struct {
		name    string
		batches [][]pgproto3.FrontendMessage
		want    []string
	}{
		{"a prepare, describe and execute", [][]pgproto3.FrontendMessage{{
			mParse("s1", "SELECT 1", 0), mDescribe('S', "s1"), mBind("", "s1", 0), mDescribe('P', ""), mExecute(""), mSync,
		}}, []string{"1", "t", "T", "2", "T", "D", "C:SELECT 1", "Z:I"}},
		{"an error skips everything up to Sync", [][]pgproto3.FrontendMessage{{
			mBind("", "nope", 0), mParse("s1", "SELECT 1", 0), mExecute(""), mFlush, mQuery("SELECT 1"), mSync, mParse("s1", "SELECT 1", 0), mSync,
		}}, []string{"E:26000", "Z:I", "1", "Z:I"}},
		{"a duplicate name fails with 42P05", [][]pgproto3.FrontendMessage{{
			mParse("s1", "SELECT 1", 0), mSync, mParse("s1", "SELECT 2", 0), mSync,
		}}, []string{"1", "Z:I", "E:42P05", "Z:I"}},
		{"a syntax error wins over a duplicate name", [][]pgproto3.FrontendMessage{{
			mParse("s1", "SELECT 1", 0), mParse("s1", "SELECT fail", 0), mSync,
		}}, []string{"1", "E:42601", "Z:I"}},
		{"a failed Parse of the unnamed statement drops the old one", [][]pgproto3.FrontendMessage{{
			mParse("", "SELECT 1", 0), mSync, mParse("", "SELECT fail", 0), mSync, mBind("", "", 0), mSync,
		}}, []string{"1", "Z:I", "E:42601", "Z:I", "E:26000", "Z:I"}},
		{"a skipped Parse of the unnamed statement keeps the old one", [][]pgproto3.FrontendMessage{{
			mParse("", "SELECT 1", 0), mSync, mBind("", "nope", 0), mParse("", "SELECT 2", 0), mSync, mBind("", "", 0), mSync,
		}}, []string{"1", "Z:I", "E:26000", "Z:I", "2", "Z:I"}},
		{"a failed transaction refuses all but ROLLBACK", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN")},
			{mParse("", "SELECT boom", 0), mBind("", "", 0), mExecute(""), mSync},
			{mParse("s1", "SELECT 1", 0), mSync, mParse("s2", "ROLLBACK", 0), mBind("", "s2", 0), mExecute(""), mSync},
		}, []string{"C:BEGIN", "Z:T", "1", "2", "E:22012", "Z:E", "E:25P02", "Z:E", "1", "2", "C:ROLLBACK", "Z:I"}},
		{"statements outlive a rolled-back transaction", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN"), mParse("s1", "SELECT 1", 0), mSync, mQuery("ROLLBACK"), mBind("", "s1", 0), mSync},
		}, []string{"C:BEGIN", "Z:T", "1", "Z:T", "C:ROLLBACK", "Z:I", "2", "Z:I"}},
		{"portals end with the transaction", [][]pgproto3.FrontendMessage{
			{mParse("s1", "SELECT 1", 0), mBind("p1", "s1", 0), mSync, mExecute("p1"), mSync},
		}, []string{"1", "2", "Z:I", "E:34000", "Z:I"}},
		{"a named portal cannot be bound twice", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN"), mParse("s1", "SELECT 1", 0), mBind("p1", "s1", 0), mBind("p1", "s1", 0), mSync},
		}, []string{"C:BEGIN", "Z:T", "1", "2", "E:42P03", "Z:E"}},
		{"the parameter count must match", [][]pgproto3.FrontendMessage{
			{mParse("s1", "SELECT 1", 1), mBind("", "s1", 0), mSync},
		}, []string{"1", "E:08P01", "Z:I"}},
		{"DEALLOCATE drops one statement or all", [][]pgproto3.FrontendMessage{
			{mParse("s1", "SELECT 1", 0), mParse("S1", "SELECT 1", 0), mParse("s2", "SELECT 2", 0), mSync},
			{mQuery(`DEALLOCATE "S1"`), mQuery("deallocate prepare S1;"), mQuery("DEALLOCATE s1"), mQuery("DEALLOCATE ALL"), mBind("", "s2", 0), mSync},
		}, []string{"1", "1", "1", "Z:I", "C:DEALLOCATE", "Z:I", "C:DEALLOCATE", "Z:I", "E:26000", "Z:I", "C:DEALLOCATE ALL", "Z:I", "E:26000", "Z:I"}},
		{"a simple query drops the unnamed statement", [][]pgproto3.FrontendMessage{
			{mParse("", "SELECT 1", 0), mSync, mQuery("SELECT 2"), mDescribe('S', ""), mSync},
		}, []string{"1", "Z:I", "T", "D", "C:SELECT 1", "Z:I", "E:26000", "Z:I"}},
		{"DISCARD ALL refuses a transaction block", [][]pgproto3.FrontendMessage{
			{mQuery("BEGIN"), mQuery("DISCARD ALL"), mQuery("COMMIT"), mQuery("COMMIT")},
		}, []string{"C:BEGIN", "Z:T", "E:25001", "Z:E", "C:ROLLBACK", "Z:I", "N:25P01", "C:COMMIT", "Z:I"}},
		{"Close never fails", [][]pgproto3.FrontendMessage{
			{mClose('S', "nope"), mClose('P', "nope"), mClose('S', ""), mSync},
		}, []string{"3", "3", "3", "Z:I"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newModelBackend()
			for _, b := range tc.batches {
				m.feed(fe(b...))
			}
			if got := messageTypes(t, m.take()); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("answers %v\n want %v", got, tc.want)
			}
		})
	}
}
