package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// activeQueries counts backends running exactly sql right now.
func activeQueries(ctx context.Context, admin *pgx.Conn, sql string) int {
	var n int
	_ = admin.QueryRow(ctx, `select count(*) from pg_stat_activity
		where query = $1 and state = 'active'`, sql).Scan(&n)
	return n
}

// backgroundQuery runs sql on conn in a goroutine; the channel yields its
// error and how long it took.
type queryResult struct {
	err     error
	elapsed time.Duration
}

func backgroundQuery(ctx context.Context, conn *pgx.Conn, sql string) <-chan queryResult {
	done := make(chan queryResult, 1)
	go func() {
		start := time.Now()
		_, err := conn.Exec(ctx, sql)
		done <- queryResult{err, time.Since(start)}
	}()
	return done
}

// startSurvivor starts sql (a pg_sleep(2)) on conn and waits until it runs.
func startSurvivor(t *testing.T, conn, admin *pgx.Conn, sql string) <-chan queryResult {
	t.Helper()
	ctx := testutil.Context(t)
	done := backgroundQuery(ctx, conn, sql)
	testutil.Eventually(t, "the other client's query to run", func() bool { return activeQueries(ctx, admin, sql) == 1 })
	return done
}

// wantSurvivor asserts a concurrent pg_sleep(2) was not cancelled.
func wantSurvivor(t *testing.T, done <-chan queryResult) {
	t.Helper()
	r := <-done
	if r.err != nil {
		t.Fatalf("the other client's query failed: %v", r.err)
	}
	if r.elapsed < 1900*time.Millisecond {
		t.Fatalf("the other client's pg_sleep(2) returned after %s", r.elapsed)
	}
}

func TestPsqlCtrlCCancelsItsOwnQueryOnly(t *testing.T) {
	s, url := startValve(t, sessionConfig(4))
	ctx := testutil.Context(t)
	admin := direct(t)
	const sleepy, other = "select pg_sleep(30)", "select pg_sleep(2)"

	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", s.Port(), cluster.User, pgtest.TestDatabase)
	var out bytes.Buffer
	cmd := exec.Command(cluster.Psql(), "-X", "-d", conninfo, "-c", sleepy)
	cmd.Env = []string{"PGPASSWORD=" + cluster.Password, "PGSSLMODE=disable"}
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, reaped := make(chan error, 1), make(chan struct{})
	go func() { exited <- cmd.Wait(); close(reaped) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // ErrProcessDone once it has exited
		<-reaped
	})

	bystander := testutil.Connect(t, url)
	if err := bystander.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, 20*time.Second, "psql's query to run", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("psql exited early: %v\n%s", err, out.String())
		default:
		}
		return activeQueries(ctx, admin, sleepy) == 1
	})
	survivor := startSurvivor(t, bystander, admin, other)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err == nil {
			t.Fatalf("psql succeeded; output:\n%s", out.String())
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("psql still ran 15s after SIGINT; output:\n%s", out.String())
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Fatalf("psql took %s", elapsed)
	}
	if !strings.Contains(out.String(), "canceling statement due to user request") {
		t.Fatalf("psql output lacks the cancel error:\n%s", out.String())
	}
	wantSurvivor(t, survivor)
	if err := bystander.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	bystander.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

func TestPgxCancelRequestCancelsOnlyItsOwnQuery(t *testing.T) {
	s, url := startValve(t, sessionConfig(4))
	ctx := testutil.Context(t)
	admin := direct(t)
	const sleepy, other = "select pg_sleep(30)", "select pg_sleep(2)"
	victim := testutil.Connect(t, url)
	bystander := testutil.Connect(t, url)
	if err := bystander.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	cancelled := backgroundQuery(ctx, victim, sleepy)
	testutil.Eventually(t, "the query to run", func() bool { return activeQueries(ctx, admin, sleepy) == 1 })
	survivor := startSurvivor(t, bystander, admin, other)
	if err := victim.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-cancelled
	var pgErr *pgconn.PgError
	if !errors.As(r.err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("cancelled query: %v, want SQLSTATE 57014", r.err)
	}
	if r.elapsed > 10*time.Second {
		t.Fatalf("the cancel took %s", r.elapsed)
	}
	wantSurvivor(t, survivor)
	// The cancelled client keeps its session.
	var n int
	if err := victim.QueryRow(ctx, "select 7").Scan(&n); err != nil || n != 7 {
		t.Fatalf("after the cancel: %d %v", n, err)
	}
	victim.Close(ctx)
	bystander.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

// sendCancel sends a CancelRequest on its own connection and waits until
// pgvalve closes it, which it does once the request has been handled. A
// well-formed request gets no answer, as from PostgreSQL; a malformed one
// may get a FATAL 08P01 first.
func sendCancel(t *testing.T, c *rawConn, pid uint32, secret []byte) {
	t.Helper()
	c.send(&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret})
	if len(secret) < 4 {
		if msg, err := c.fe.Receive(); err == nil {
			if e, ok := msg.(*pgproto3.ErrorResponse); !ok || e.Code != "08P01" {
				t.Fatalf("a malformed CancelRequest got %#v; want nothing or FATAL 08P01", msg)
			}
		}
	}
	rest, err := io.ReadAll(c.nc)
	if err != nil || len(rest) != 0 {
		t.Fatalf("a CancelRequest got %q (%v); want the connection closed without an answer", rest, err)
	}
}

func TestACancelRequestWithAWrongKeyCancelsNothing(t *testing.T) {
	s, url := startValve(t, sessionConfig(2))
	ctx := testutil.Context(t)
	admin := direct(t)
	const sleepy = "select pg_sleep(30)"
	conn := testutil.Connect(t, url)
	pid, secret := conn.PgConn().PID(), conn.PgConn().SecretKey()
	if len(secret) != 4 {
		t.Fatalf("pgvalve gave a %d-byte secret; protocol 3.0 keys have 4", len(secret))
	}
	flip := func(i int) []byte { b := bytes.Clone(secret); b[i] ^= 0xff; return b }
	cases := []struct {
		name   string
		pid    uint32
		secret []byte
	}{
		{"a wrong secret", pid, flip(0)},
		{"another wrong secret", pid, flip(3)},
		{"a wrong process id", pid ^ 1, secret},
		{"a longer secret", pid, append(bytes.Clone(secret), 0, 0, 0, 0)},
		{"a shorter secret", pid, secret[:3]},
	}
	running := backgroundQuery(ctx, conn, sleepy)
	testutil.Eventually(t, "the query to run", func() bool { return activeQueries(ctx, admin, sleepy) == 1 })
	for _, tc := range cases {
		sendCancel(t, dialRaw(t, s), tc.pid, tc.secret)
	}
	// A delivered cancel takes effect within moments; give it time to.
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-running:
		t.Fatalf("a cancel with a wrong key ended the query: %v", r.err)
	default:
	}
	if activeQueries(ctx, admin, sleepy) != 1 {
		t.Fatal("the query stopped running")
	}

	// The same raw request with the right key does cancel it: the keys
	// above failed for being wrong, not for their encoding.
	sendCancel(t, dialRaw(t, s), pid, secret)
	r := <-running
	var pgErr *pgconn.PgError
	if !errors.As(r.err, &pgErr) || pgErr.Code != "57014" {
		t.Fatalf("cancel with the right key: %v, want SQLSTATE 57014", r.err)
	}
	conn.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

func TestACancelForAClientHoldingNoServerIsHarmless(t *testing.T) {
	s, url := startValve(t, sessionConfig(1))
	ctx := testutil.Context(t)
	idle := testutil.Connect(t, url) // session mode: no server until its first query
	busy := testutil.Connect(t, url)
	admin := direct(t)
	survivor := startSurvivor(t, busy, admin, "select pg_sleep(2)")
	sendCancel(t, dialRaw(t, s), idle.PgConn().PID(), idle.PgConn().SecretKey())
	wantSurvivor(t, survivor)
	busy.Close(ctx)
	if err := idle.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	idle.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}

// A cancel arrives on a connection of its own. When pgvalve is at
// max_client_conn, that connection is refused, but the refusal reads the
// packet anyway and so knows it is a CancelRequest: saturation is exactly
// when a client most needs to stop a runaway query.
func TestACancelStillWorksWhenMaxClientConnIsReached(t *testing.T) {
	cfg := sessionConfig(1)
	cfg.MaxClientConn = 1
	s, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	admin := direct(t)
	const sleepy = "select pg_sleep(30)"
	conn := testutil.Connect(t, url)
	var pid int
	if err := conn.QueryRow(ctx, "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	running := backgroundQuery(ctx, conn, sleepy)
	testutil.Eventually(t, "the query to run", func() bool { return activeQueries(ctx, admin, sleepy) == 1 })
	if err := conn.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	var r queryResult
	select {
	case r = <-running:
	case <-time.After(5 * time.Second):
		// Stop the query behind pgvalve's back so the test ends tidy.
		if _, err := admin.Exec(ctx, "select pg_cancel_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		<-running
		conn.Close(ctx)
		s.WaitIdle(t, 10*time.Second)
		t.Fatal("a CancelRequest arriving while max_client_conn is reached was dropped; the query kept running")
	}
	wantCode(t, r.err, "57014")
	conn.Close(ctx)
	s.WaitIdle(t, 10*time.Second)
}
