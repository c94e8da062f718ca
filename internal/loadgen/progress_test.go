package loadgen

import (
	"strings"
	"testing"
)

func TestProgressRewritesOneLineOnATerminalAndPrintsPlainLinesElsewhere(t *testing.T) {
	p := Progress{Target: "pgvalve", Phase: "steady", Users: 100, Pages: 194, PageP95: 33.3, Errors: 2}
	var term strings.Builder
	show := Printer(&term, true)
	show(p)
	show(p)
	if got := strings.Count(term.String(), "\r\033[K"); got != 2 || strings.Contains(term.String(), "\n") {
		t.Fatalf("on a terminal: %q; want the line rewritten in place twice, no newline", term.String())
	}
	var log strings.Builder
	show = Printer(&log, false)
	for range 10 { // ten seconds' calls in a moment: one line, not ten
		show(p)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 1 || strings.Contains(log.String(), "\r") {
		t.Fatalf("elsewhere: %q; want one plain line (then one every 5 s)", log.String())
	}
	for _, want := range []string{"pgvalve", "steady", "users  100", "pages/s    194", "33.3ms", "errors/s 2"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the line %q lacks %q", lines[0], want)
		}
	}
}
