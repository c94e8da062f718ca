package stmt

import "testing"

// The cheap first look must never miss a DEALLOCATE or DISCARD that the
// parser would find: it only lets the parser be skipped.
func TestTheFirstLookNeverMissesAResetCommand(t *testing.T) {
	for _, sql := range []string{
		"DEALLOCATE ALL", "deallocate all;", "  DiScArD ALL", "/* c */ deallocate s1",
		"DEALLOCATE PREPARE \"my stmt\"", "discard all;;", "select 1; DEALLOCATE ALL",
	} {
		body := append([]byte(sql), 0)
		if !namesDeallocateOrDiscard(body) {
			t.Errorf("%q: first look says no", sql)
		}
	}
	for _, sql := range []string{"select 1", "SELECT abalance FROM pgbench_accounts WHERE aid = $1", "dealloc", "discar"} {
		body := append([]byte(sql), 0)
		if namesDeallocateOrDiscard(body) {
			t.Errorf("%q: first look says yes", sql)
		}
		if resetCommand(body) != "" {
			t.Errorf("%q: resetCommand found a reset", sql)
		}
		if _, ok := deallocateName(body); ok {
			t.Errorf("%q: deallocateName found a name", sql)
		}
	}
}
