package session

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestTxExitRecognisesOnlyALoneStatementThatEndsATransaction(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		verb string // "" = not a transaction exit
	}{
		{"rollback", "rollback"},
		{"ROLLBACK;", "rollback"},
		{"  Rollback Work ; ", "rollback"},
		{"abort transaction", "rollback"},
		{"commit", "commit"},
		{"COMMIT TRANSACTION;;", "commit"},
		{"end", "commit"},
		{"end work", "commit"},
		{"rollback and chain", ""}, // opens a new transaction: a server must run it
		{"rollback to savepoint a", ""},
		{"commit prepared 'x'", ""},
		{"rollback; begin", ""},
		{"select 1", ""},
		{"", ""},
		{";", ""},
	} {
		verb, ok := txExit(append([]byte(tc.sql), 0))
		if ok != (tc.verb != "") || verb != tc.verb {
			t.Errorf("txExit(%q) = %q, %v; want %q", tc.sql, verb, ok, tc.verb)
		}
	}
}
