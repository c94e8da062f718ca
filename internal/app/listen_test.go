package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// waitNotification waits up to 10 seconds for l's next notification.
func waitNotification(t *testing.T, l *pgx.Conn) *pgconn.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(testutil.Context(t), 10*time.Second)
	defer cancel()
	n, err := l.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("waiting for a notification: %v", err)
	}
	return n
}

// A transaction-pooled client's LISTEN joins the pool's shared listening
// connection: it gets every notification other clients send, in order,
// while 20 clients keep both servers busy, without holding a server; after
// UNLISTEN none arrives.
func TestListenInTransactionPoolingSharesOneListeningConnection(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 20)
	defer stop()
	l := connectTx(t, url)
	testutil.MustExec(t, l, "listen jobs")
	if pin := clientPin(t, s); pin != "" {
		t.Fatalf("the listening client is pinned (%s)", pin)
	}
	sender := connectTx(t, url)
	const n = 20
	for i := range n {
		testutil.MustExec(t, sender, fmt.Sprintf("select pg_notify('jobs', 'job %d')", i))
	}
	for i := range n {
		if got := waitNotification(t, l); got.Channel != "jobs" || got.Payload != fmt.Sprintf("job %d", i) {
			t.Fatalf("notification %d: %+v", i, got)
		}
	}
	testutil.MustExec(t, l, "select 1") // the listener still runs queries
	testutil.MustExec(t, l, "unlisten jobs")
	testutil.MustExec(t, sender, "select pg_notify('jobs', 'late')")
	testutil.MustExec(t, l, "listen other")
	testutil.MustExec(t, sender, "select pg_notify('other', 'marker')")
	if got := waitNotification(t, l); got.Channel != "other" || got.Payload != "marker" {
		t.Fatalf("after UNLISTEN jobs got %+v, want only the marker on other", got)
	}
}

// Killing the listening connection costs its clients only what the NOTICE
// says: the client is told notifications may have been missed, and every
// notification sent after the NOTICE reaches it, in order.
func TestALostListeningConnectionIsReopenedWithANotice(t *testing.T) {
	_, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 20)
	defer stop()
	su := direct(t)
	notices := make(chan *pgconn.Notice, 4)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices <- n }
	l, err := pgx.ConnectConfig(testutil.Context(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	testutil.MustExec(t, l, "listen jobs")
	var killed int
	err = su.QueryRow(testutil.Context(t), "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = $1",
		app.ListenerAppName).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("killed %d listening connections (%v), want 1", killed, err)
	}
	sender := connectTx(t, url)
	notice := awaitGapNotice(t, l, sender, notices)
	if !strings.Contains(notice.Message, "may have been missed") {
		t.Errorf("notice %q does not say notifications may have been missed", notice.Message)
	}
	const n = 20
	for i := range n {
		testutil.MustExec(t, sender, fmt.Sprintf("select pg_notify('jobs', 'after the notice %d')", i))
	}
	for i := 0; i < n; {
		got := waitNotification(t, l)
		if strings.HasPrefix(got.Payload, "before the notice") {
			continue // sent before the NOTICE: may arrive or not
		}
		if want := fmt.Sprintf("after the notice %d", i); got.Payload != want {
			t.Fatalf("got %q, want %q: a notification sent after the NOTICE was lost", got.Payload, want)
		}
		i++
	}
}

// awaitGapNotice keeps sending notifications (which may be lost) and
// reading l until l gets the NOTICE about the lost listening connection.
func awaitGapNotice(t *testing.T, l, sender *pgx.Conn, notices chan *pgconn.Notice) *pgconn.Notice {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		testutil.MustExec(t, sender, fmt.Sprintf("select pg_notify('jobs', 'before the notice %d')", i))
		ctx, cancel := context.WithTimeout(testutil.Context(t), 50*time.Millisecond)
		_, _ = l.WaitForNotification(ctx) // reads the NOTICE too
		cancel()
		select {
		case n := <-notices:
			return n
		default:
		}
	}
	t.Fatal("no NOTICE after the listening connection was killed")
	return nil
}

// listeners is how many listening connections the app's pools have open.
func listeners(s *valvetest.Server) int {
	n := 0
	for _, st := range s.App.Stats() {
		n += st.Listeners
	}
	return n
}

// The listening connection opens at the first LISTEN, is counted, and
// closes when its last client leaves.
func TestTheListeningConnectionClosesWhenItsLastClientLeaves(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	if listeners(s) != 0 {
		t.Fatal("a listening connection before any LISTEN")
	}
	a, b := connectTx(t, url), connectTx(t, url)
	testutil.MustExec(t, a, "listen jobs")
	testutil.MustExec(t, b, "listen jobs")
	if listeners(s) != 1 {
		t.Fatalf("%d listening connections, want 1", listeners(s))
	}
	a.Close(context.Background())
	testutil.MustExec(t, b, "select 1")
	if listeners(s) != 1 {
		t.Fatal("the listening connection closed while a client still listens")
	}
	b.Close(context.Background())
	testutil.EventuallyWithin(t, 10*time.Second, "the listening connection to close", func() bool {
		return listeners(s) == 0
	})
}
