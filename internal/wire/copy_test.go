package wire

import "testing"

func TestDropCopySyncsDropsOnlyTheSyncsSentBeforeTheCopyEnded(t *testing.T) {
	self := func(b byte) byte { return b }
	for queue, want := range map[string]struct {
		kept string
		open bool
	}{
		"":      {"", true},
		"SS":    {"", true},      // the COPY goes on: every Sync so far is ignored
		"ScS":   {"cS", false},   // the Sync after CopyDone is answered
		"SRcSS": {"RcSS", false}, // a request in between stays
		"cScS":  {"cScS", false},
	} {
		kept, open := DropCopySyncs([]byte(queue), self)
		if string(kept) != want.kept || open != want.open {
			t.Errorf("DropCopySyncs(%q) = %q open %v, want %q open %v", queue, kept, open, want.kept, want.open)
		}
	}
}
