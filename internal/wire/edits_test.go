package wire

import "testing"

func TestEditsSpliceReplacementsAndLeaveAnUneditedSpanUncopied(t *testing.T) {
	var e Edits
	span := []byte("aaBBccDDee")
	if out := e.Apply(span); &out[0] != &span[0] {
		t.Fatal("a span without edits was copied")
	}
	e.ReplaceWith(2, 2, []byte("xyz")) // BB becomes xyz
	e.Replace(6, 2, len(e.Buf))        // DD goes
	if got := string(e.Apply(span)); got != "aaxyzccee" {
		t.Fatalf("Apply = %q, want %q", got, "aaxyzccee")
	}
	e.Reset()
	if e.Any() || string(e.Apply(span)) != string(span) {
		t.Fatal("Reset kept edits")
	}
}
