package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// pgbench runs pgbench through 127.0.0.1:port in the background; its
// outcome comes on the returned channel: an error when it failed or any
// transaction did.
func pgbench(t *testing.T, port string, args ...string) <-chan error {
	t.Helper()
	base := []string{"-n", "-h", "127.0.0.1", "-p", port, "-U", cluster.User}
	cmd := exec.Command(cluster.PgBench(), append(append(base, args...), pgtest.TestDatabase)...)
	cmd.Env = []string{"PGPASSWORD=" + cluster.Password}
	done := make(chan error, 1)
	go func() {
		out, err := cmd.CombinedOutput()
		processed := regexp.MustCompile(`actually processed: (\d+)`).FindSubmatch(out)
		switch {
		case err != nil:
			err = fmt.Errorf("pgbench %v: %v\n%s", args, err, out)
		case !strings.Contains(string(out), "number of failed transactions: 0 "):
			err = fmt.Errorf("pgbench %v failed transactions:\n%s", args, out)
		case processed == nil || string(processed[1]) == "0":
			err = fmt.Errorf("pgbench %v processed nothing:\n%s", args, out)
		default:
			t.Logf("pgbench %v: %s transactions, none failed", args, processed[1])
		}
		done <- err
	}()
	return done
}

func initPgbench(t *testing.T) {
	t.Helper()
	cmd := exec.Command(cluster.PgBench(), "-i", "-s", "1", "-q", "-h", cluster.Host, "-p", strconv.Itoa(cluster.Port), "-U", cluster.User, pgtest.TestDatabase)
	cmd.Env = []string{"PGPASSWORD=" + cluster.Password}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
}

// takeoverConfig is a transaction-pooling pgvalve with a takeover socket
// of its own and a session-pooling route, sess; the old process drains
// for up to shutdown.
func takeoverConfig(t *testing.T, shutdown string) string {
	dir := t.TempDir()
	return writeFile(t, configText(4, `pool_mode = "transaction"`,
		fmt.Sprintf("takeover_socket = %q", filepath.Join(dir, "takeover")),
		`metrics_listen = "127.0.0.1:0"`, fmt.Sprintf("shutdown_timeout = %q", shutdown),
		`[databases.sess]`, fmt.Sprintf("upstream = %q", cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase)), `pool_mode = "session"`))
}

// A new pgvalve takes over from a running one under pgbench load (clients
// that stay connected, and clients that connect for every transaction):
// no transaction fails, the clients idle between transactions keep their
// connection with their settings, prepared statements and cancel key, and
// the old process exits. A session-pooling client, which cannot be handed
// over, is the one that loses its connection.
func TestATakeoverUnderLoadFailsNoTransactionAndKeepsIdleClients(t *testing.T) {
	initPgbench(t)
	path := takeoverConfig(t, "5s")
	old := startChild(t, "--config", path)
	httpAddr := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(old.waitLog(t, 0, "metrics, live page"))[1]
	ctx := testutil.Context(t)

	idle := connect(t, old.url(pgtest.TestDatabase), nil)
	if _, err := idle.Exec(ctx, "set statement_timeout = '12345ms'"); err != nil {
		t.Fatal(err)
	}
	var sum int
	if err := idle.QueryRow(ctx, "select $1::int + 1", 41).Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("prepared: %d, %v", sum, err)
	}
	sess := connect(t, old.url("sess"), nil)
	exec1(t, sess, "the session-pooling client before the takeover")
	slept := make(chan error, 1)
	go func() { _, err := sess.Exec(ctx, "select pg_sleep(30)"); slept <- err }()

	steady := pgbench(t, old.port, "-c", "8", "-j", "2", "-T", "6")
	reconnecting := pgbench(t, old.port, "-C", "-c", "2", "-T", "6")
	time.Sleep(1500 * time.Millisecond) // load running
	fresh := startChild(t, "--config", path, "--takeover")
	if fresh.port != old.port {
		t.Fatalf("the new pgvalve listens on %s, the old one on %s", fresh.port, old.port)
	}
	old.waitLog(t, 0, "no longer accepting")
	// The cancel reaches the new process, which passes it to the old one,
	// where the session-pooling client's query runs.
	if err := sess.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	var pgErr *pgconn.PgError
	if err := <-slept; !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Errorf("a cancel for a client still in the old pgvalve: %v; want 57014", err)
	}
	line := fresh.waitLog(t, 0, "takeover done")
	select {
	case <-old.done:
		if old.err != nil {
			t.Fatalf("the old pgvalve exited with %v; log:\n%s", old.err, old.log)
		}
	case <-time.After(eventually):
		t.Fatalf("the old pgvalve is still running; log:\n%s", old.log)
	}
	went := regexp.MustCompile(`clients_handed_over=(\d+)`).FindStringSubmatch(line)
	if n, _ := strconv.Atoi(went[1]); n < 9 {
		t.Errorf("%s clients handed over; want the 8 steady pgbench clients and the idle one at least:\n%s", went[1], old.log)
	}
	for _, done := range []<-chan error{steady, reconnecting} {
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(eventually):
			t.Fatal("pgbench did not finish")
		}
	}

	var timeout string
	if err := idle.QueryRow(ctx, "show statement_timeout").Scan(&timeout); err != nil || timeout != "12345ms" {
		t.Errorf("the handed-over client's setting: %q, %v; want 12345ms", timeout, err)
	}
	if err := idle.QueryRow(ctx, "select $1::int + 1", 41).Scan(&sum); err != nil || sum != 42 {
		t.Errorf("the handed-over client's prepared statement: %d, %v", sum, err)
	}
	slept = make(chan error, 1)
	go func() { _, err := idle.Exec(ctx, "select pg_sleep(10)"); slept <- err }()
	time.Sleep(300 * time.Millisecond) // the query runs
	if err := idle.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	err := <-slept
	if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
		t.Errorf("a cancel with the key the old pgvalve issued: %v; want 57014 (the new one knows the key)", err)
	}
	if _, err := sess.Exec(ctx, "select 1"); err == nil {
		t.Error("the session-pooling client kept a connection the old pgvalve could not hand over")
	}
	resp, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatalf("/healthz after the takeover: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz after the takeover: %d %s", resp.StatusCode, body)
	}
	fresh.alive(t)
}

// A takeover with no pgvalve to take over from fails with a message, and
// a running pgvalve refuses a second process binding its takeover socket.
func TestTakeoverWithoutARunningPgvalveFailsClearly(t *testing.T) {
	path := takeoverConfig(t, "5s")
	code, _, stderr := run("run", "--unix-socket-dir", "", "--config", path, "--takeover")
	if code != 1 || !strings.Contains(stderr, "no pgvalve to take over from") {
		t.Fatalf("--takeover with nothing running: %d %q", code, stderr)
	}
}

// While the old pgvalve waits for a client it cannot hand over (session
// pooling), either process stops at once when told: the new one without
// waiting for the old one to finish, the old one as a second SIGTERM stops
// a drain, closing that client long before shutdown_timeout.
func TestASIGTERMEndsEitherSideOfATakeoverThatWaits(t *testing.T) {
	path := takeoverConfig(t, "10m")
	old := startChild(t, "--config", path)
	sess := connect(t, old.url("sess"), nil)
	exec1(t, sess, "the session-pooling client")
	fresh := startChild(t, "--config", path, "--takeover")
	old.waitLog(t, 0, "no longer accepting")
	fresh.signal(t, syscall.SIGTERM)
	select {
	case <-fresh.done:
	case <-time.After(eventually):
		t.Fatalf("the new pgvalve waits for the old one to finish after SIGTERM; log:\n%s", fresh.log)
	}
	mark := len(old.log.String())
	old.signal(t, syscall.SIGTERM)
	select {
	case <-old.done:
		if old.err != nil {
			t.Fatalf("the old pgvalve exited with %v; log:\n%s", old.err, old.log.String()[mark:])
		}
	case <-time.After(eventually):
		t.Fatalf("the old pgvalve still waits for its session-pooling client after SIGTERM; log:\n%s", old.log)
	}
	if _, err := sess.Exec(testutil.Context(t), "select 1"); err == nil {
		t.Error("the session-pooling client kept a connection to a pgvalve that exited")
	}
}
