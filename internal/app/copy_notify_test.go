package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// rowsReader yields "i\ttext-i\n" for i in [1, n], in small pieces, with
// bad in place of row badAt (0: none).
type rowsReader struct {
	i, n, badAt int
	bad         string
	pending     []byte
}

func (r *rowsReader) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.i == r.n {
			return 0, io.EOF
		}
		r.i++
		if r.i == r.badAt {
			r.pending = []byte(r.bad)
		} else {
			r.pending = fmt.Appendf(nil, "%d\ttext-%d\n", r.i, r.i)
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

// failingReader yields some rows and then an error.
type failingReader struct{ rows *rowsReader }

func (r failingReader) Read(p []byte) (int, error) {
	n, err := r.rows.Read(p)
	if err == io.EOF {
		return 0, errors.New("the client's source failed")
	}
	return n, err
}

func TestCopyRunsBothWaysThroughSessionMode(t *testing.T) {
	s, url := startValve(t, sessionConfig(2))
	ctx := testutil.Context(t)
	conn := testutil.Connect(t, url)
	pg := conn.PgConn()
	if _, err := conn.Exec(ctx, `create temp table copied(id int primary key, t text not null);
		create temp table failed(id int primary key, t text not null)`); err != nil {
		t.Fatal(err)
	}
	const rows = 100_000

	var want bytes.Buffer
	if _, err := io.Copy(&want, &rowsReader{n: rows}); err != nil {
		t.Fatal(err)
	}
	tag, err := pg.CopyFrom(ctx, &rowsReader{n: rows}, "copy copied from stdin")
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != rows {
		t.Fatalf("COPY FROM: %d rows", tag.RowsAffected())
	}

	var got bytes.Buffer
	tag, err = pg.CopyTo(ctx, &got, "copy (select * from copied order by id) to stdout")
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != rows || bytes.Count(got.Bytes(), []byte("\n")) != rows {
		t.Fatalf("COPY TO: tag %d rows, %d lines", tag.RowsAffected(), bytes.Count(got.Bytes(), []byte("\n")))
	}
	if got.Len() != want.Len() || !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("COPY TO returned %d bytes, want the %d copied in", got.Len(), want.Len())
	}

	t.Run("binary COPY FROM through pgx", func(t *testing.T) {
		src := make([][]any, 10_000)
		for i := range src {
			src[i] = []any{rows + 1 + i, strings.Repeat("b", i%100)}
		}
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "t"}, pgx.CopyFromRows(src))
		if err != nil || n != int64(len(src)) {
			t.Fatalf("CopyFrom: %d %v", n, err)
		}
	})
	t.Run("bad data midway returns the server's error", func(t *testing.T) {
		_, err := pg.CopyFrom(ctx, &rowsReader{n: 50_000, badAt: 25_000, bad: "oops\tnot a number\n"},
			"copy failed from stdin")
		wantCode(t, err, "22P02")
	})
	t.Run("a duplicate key midway returns the server's error", func(t *testing.T) {
		_, err := pg.CopyFrom(ctx, &rowsReader{n: 50_000, badAt: 40_000, bad: "1\tduplicate\n"},
			"copy failed from stdin")
		wantCode(t, err, "23505")
	})
	t.Run("a client-side failure midway sends CopyFail", func(t *testing.T) {
		_, err := pg.CopyFrom(ctx, failingReader{&rowsReader{n: 30_000}}, "copy failed from stdin")
		pgErr := wantCode(t, err, "57014")
		if !strings.Contains(pgErr.Message, "the client's source failed") {
			t.Fatalf("message %q lacks the client's reason", pgErr.Message)
		}
	})
	t.Run("psql COPY FROM STDIN", func(t *testing.T) {
		var script strings.Builder
		script.WriteString("create temp table p(id int, t text);\ncopy p from stdin;\n")
		if _, err := io.Copy(&script, &rowsReader{n: 10_000}); err != nil {
			t.Fatal(err)
		}
		script.WriteString("\\.\nselect count(*), sum(id) from p;\n")
		conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", s.Port(), cluster.User, pgtest.TestDatabase)
		cmd := exec.Command(cluster.Psql(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-")
		cmd.Env = []string{"PGPASSWORD=" + cluster.Password, "PGSSLMODE=disable"}
		cmd.Stdin = strings.NewReader(script.String())
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "10000|50005000" {
			t.Fatalf("psql: %v\n%s", err, out)
		}
	})
	// None of the failed copies left a row, and the session still works.
	var n, m int
	if err := conn.QueryRow(ctx, "select (select count(*) from copied), (select count(*) from failed)").Scan(&n, &m); err != nil {
		t.Fatal(err)
	}
	if n != rows+10_000 || m != 0 {
		t.Fatalf("copied has %d rows, failed %d; want %d and 0", n, m, rows+10_000)
	}
	conn.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

func TestListenNotifyAndNoticesReachTheClient(t *testing.T) {
	s, url := startValve(t, sessionConfig(3))
	ctx := testutil.Context(t)
	listener := testutil.Connect(t, url)
	notifier := testutil.Connect(t, url)
	if _, err := listener.Exec(ctx, "listen valve_events"); err != nil {
		t.Fatal(err)
	}
	var notifierPID uint32
	if err := notifier.QueryRow(ctx, "select pg_backend_pid()").Scan(&notifierPID); err != nil {
		t.Fatal(err)
	}
	for i, payload := range []string{"first", "second: with ünïcode", strings.Repeat("z", 7000)} {
		if _, err := notifier.Exec(ctx, "select pg_notify('valve_events', $1)", payload); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if n.Channel != "valve_events" || n.Payload != payload || n.PID != notifierPID {
			t.Fatalf("notification %d = {%q, %.20q, %d}, want {valve_events, %.20q, %d}",
				i, n.Channel, n.Payload, n.PID, payload, notifierPID)
		}
	}

	t.Run("a notification arriving while the listener is idle is delivered", func(t *testing.T) {
		// The listener sends nothing: pgvalve must relay what the server
		// sends on its own.
		got := make(chan *pgconn.Notification, 1)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			n, _ := listener.WaitForNotification(wctx)
			got <- n
		}()
		time.Sleep(100 * time.Millisecond)
		if _, err := notifier.Exec(ctx, "notify valve_events, 'late'"); err != nil {
			t.Fatal(err)
		}
		if n := <-got; n == nil || n.Payload != "late" {
			t.Fatalf("got %+v", n)
		}
	})

	t.Run("notices", func(t *testing.T) {
		var mu sync.Mutex
		var notices []*pgconn.Notice
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			notices = append(notices, n)
			mu.Unlock()
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "do $$ begin raise notice 'hello'; raise warning 'careful' using errcode = '01000'; end $$"); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(notices) != 2 {
			t.Fatalf("got %d notices, want 2: %+v", len(notices), notices)
		}
		if n := notices[0]; n.Severity != "NOTICE" || n.Message != "hello" || n.Code != "00000" {
			t.Fatalf("first notice %s %s %q", n.Severity, n.Code, n.Message)
		}
		if n := notices[1]; n.Severity != "WARNING" || n.Message != "careful" || n.Code != "01000" {
			t.Fatalf("second notice %s %s %q", n.Severity, n.Code, n.Message)
		}
	})
	listener.Close(ctx)
	notifier.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

func TestAListenDoesNotOutliveItsClient(t *testing.T) {
	s, url := startValve(t, sessionConfig(1))
	ctx := testutil.Context(t)
	admin := direct(t)
	first := testutil.Connect(t, url)
	var pid1, pid2 int
	if err := first.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid1); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Exec(ctx, "listen leftover"); err != nil {
		t.Fatal(err)
	}
	first.Close(ctx)
	s.WaitIdle(t, 10*time.Second)

	second := testutil.Connect(t, url)
	if err := second.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid2); err != nil {
		t.Fatal(err)
	}
	if pid1 != pid2 {
		t.Fatalf("pool of one: want the server reused (pids %d, %d)", pid1, pid2)
	}
	if _, err := admin.Exec(ctx, "notify leftover, 'for the first client only'"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	n, err := second.WaitForNotification(wctx)
	cancel()
	if err == nil {
		t.Fatalf("the next client received the previous client's notification %+v", n)
	}
	if err := second.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	second.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}
