package loadgen

import (
	"fmt"
	"io"
	"time"
)

// Printer shows progress: on a terminal, one line rewritten each second;
// elsewhere (a log, CI), a plain line every 5 seconds.
func Printer(w io.Writer, terminal bool) func(Progress) {
	var last time.Time
	return func(p Progress) {
		line := fmt.Sprintf("%s round %d %-9s users %4d  pages/s %6d  p95 %9s  errors/s %d",
			shortTarget(p.Target), p.Round+1, p.Phase, p.Users, p.Pages, ms(p.PageP95), p.Errors)
		if terminal {
			fmt.Fprintf(w, "\r\033[K%s", line)
			return
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintln(w, line)
		}
	}
}
