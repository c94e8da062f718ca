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

// The one-pass look at a simple query finds each word exactly where the
// per-word looks it gates would.
func TestTheOnePassLookFindsWhatEachWordsLookFinds(t *testing.T) {
	for _, sql := range []string{
		"DEALLOCATE ALL", "  DiScArD ALL", "select 1", "PREPARE p AS SELECT 1", "execute p(1)",
		"DO $$BEGIN EXECUTE 'DEALLOCATE ALL'; END$$", "dealloc", "discar", "prepar", "EXECUT",
		"SELECT abalance FROM pgbench_accounts WHERE aid = 1", "xdeallocatex", "", "d", "DEALLOCATEDISCARD",
	} {
		b := []byte(sql)
		w := sqlWordsIn(b)
		for _, c := range []struct {
			bit  int
			word string
		}{{wordDeallocate, "deallocate"}, {wordDiscard, "discard"}, {wordPrepare, "prepare"}, {wordExecute, "execute"}} {
			if got, want := w&c.bit != 0, containsFold(b, c.word); got != want {
				t.Errorf("%q: %s found %v, containsFold says %v", sql, c.word, got, want)
			}
		}
		if w&(wordDeallocate|wordPrepare|wordExecute) != 0 != namesPrepared(b) {
			t.Errorf("%q: words %b disagree with namesPrepared", sql, w)
		}
	}
}
