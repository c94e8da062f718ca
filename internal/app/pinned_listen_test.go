package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// exactlyOnce sends n notifications on channel from sender and checks
// that l gets each once, in order: a marker sent after them must be the
// next thing l gets.
func exactlyOnce(t *testing.T, l, sender *pgx.Conn, channel string, n int) {
	t.Helper()
	for i := range n {
		testutil.MustExec(t, sender, fmt.Sprintf("select pg_notify('%s', 'n%d')", channel, i))
	}
	testutil.MustExec(t, sender, fmt.Sprintf("select pg_notify('%s', 'marker')", channel))
	for i := range n + 1 {
		want := "marker"
		if i < n {
			want = fmt.Sprintf("n%d", i)
		}
		if got := waitNotification(t, l); got.Payload != want {
			t.Fatalf("notification %d: got %q, want %q (each exactly once)", i, got.Payload, want)
		}
	}
	ctx, cancel := context.WithTimeout(testutil.Context(t), 100*time.Millisecond)
	defer cancel()
	if got, err := l.WaitForNotification(ctx); err == nil {
		t.Fatalf("got %q after the marker: a notification came twice", got.Payload)
	}
}

// A client pinned by an advisory lock that LISTENs gets each notification
// exactly once, whether it listened before the lock (through the shared
// listener) or after it (on its own server, which its LISTEN goes to); after
// the unlock it still does.
func TestAPinnedListenerGetsEachNotificationOnce(t *testing.T) {
	// Not "listen, lock, listen again": the second LISTEN goes to the
	// pinned server, so each notification comes twice (a limit the README
	// states).
	for _, order := range []string{"listen then lock", "lock then listen"} {
		t.Run(order, func(t *testing.T) {
			s, url := startValve(t, txnConfig(2))
			stop := busy(t, url, 10)
			defer stop()
			l, sender := connectTx(t, url), connectTx(t, url)
			steps := []string{"listen pinned_events", "select pg_advisory_lock(4343)"}
			switch order {
			case "lock then listen":
				steps[0], steps[1] = steps[1], steps[0]
			}
			for _, sql := range steps {
				testutil.MustExec(t, l, sql)
			}
			exactlyOnce(t, l, sender, "pinned_events", 20)
			testutil.MustExec(t, l, "select pg_advisory_unlock(4343)")
			exactlyOnce(t, l, sender, "pinned_events", 5)
			testutil.MustExec(t, l, "unlisten pinned_events")
			wantPin(t, s, "")
		})
	}
}
