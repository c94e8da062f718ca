package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// eventually bounds every wait; nothing asserts on how fast pgvalve is.
const eventually = 20 * time.Second

// child is `pgvalve run` running as a child process.
type child struct {
	cmd  *exec.Cmd
	log  *testutil.Buffer
	done chan struct{} // closed once the process has exited
	err  error         // its exit, once done is closed
	port string
}

// startChild runs `pgvalve run args...` (the test binary running main) and
// waits until it listens. It is ended, by its PID, when the test ends.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	return startChildEnv(t, nil, args...)
}

// startChildEnv is startChild with env added to the child's environment.
func startChildEnv(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	c := &child{log: &testutil.Buffer{}, done: make(chan struct{})}
	// No unix socket: the default /tmp is shared with other tests and poolers.
	c.cmd = exec.Command(os.Args[0], append([]string{"run", "--unix-socket-dir", ""}, args...)...)
	c.cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	c.cmd.Stderr = c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() { c.stop(t) })
	line := c.waitLog(t, 0, "pgvalve listening")
	m := regexp.MustCompile(`addr=127\.0\.0\.1:(\d+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no port in %q", line)
	}
	c.port = m[1]
	return c
}

// stop ends the child with SIGTERM and checks it exits cleanly; one that
// does not is killed.
func (c *child) stop(t *testing.T) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
		if c.err != nil {
			t.Errorf("pgvalve exited with %v after SIGTERM; log:\n%s", c.err, c.log)
		}
	case <-time.After(eventually):
		_ = syscall.Kill(c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		t.Errorf("pgvalve did not exit after SIGTERM; log:\n%s", c.log)
	}
}

// signal sends sig to the child and returns the log's length before it, to
// look for what the signal logged.
func (c *child) signal(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	mark := len(c.log.String())
	if err := syscall.Kill(c.cmd.Process.Pid, sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
	return mark
}

// waitLog waits for a log line containing want after byte offset from, and
// returns it.
func (c *child) waitLog(t *testing.T, from int, want string) string {
	t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		if log := c.log.String(); len(log) > from {
			for _, line := range strings.Split(log[from:], "\n") {
				if strings.Contains(line, want) {
					return line
				}
			}
		}
		select {
		case <-c.done:
			t.Fatalf("pgvalve exited (%v) before logging %q; log:\n%s", c.err, want, c.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q; log:\n%s", want, c.log)
		}
	}
}

// alive fails the test if the child has exited.
func (c *child) alive(t *testing.T) {
	t.Helper()
	select {
	case <-c.done:
		t.Fatalf("pgvalve exited: %v; log:\n%s", c.err, c.log)
	default:
	}
}

func (c *child) url(db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%s/%s?sslmode=disable", cluster.User, cluster.Password, c.port, db)
}

// configText is a configuration in front of the test cluster with the
// given pool_size and extra lines; pool_size is on line 3.
func configText(poolSize int, extra ...string) string {
	return fmt.Sprintf("listen = \"127.0.0.1:0\"\nupstream = %q\npool_size = %d\nquery_wait_timeout = 0\nquery_wait_notify = \"50ms\"\n%s",
		cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase), poolSize, strings.Join(extra, "\n"))
}

func rewrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// connect opens a client through pgvalve; queued, if given, hears of the
// query_wait_notify NOTICE that says it waits for a server.
func connect(t *testing.T, url string, queued chan<- struct{}) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if queued != nil && strings.Contains(n.Message, "waiting in line") {
			select {
			case queued <- struct{}{}:
			default:
			}
		}
	}
	conn, err := pgx.ConnectConfig(testutil.Context(t), cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, c *pgx.Conn, what string) {
	t.Helper()
	if _, err := c.Exec(testutil.Context(t), "select 1"); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// backends counts the test user's server connections at PostgreSQL.
func backends(t *testing.T) int {
	t.Helper()
	ctx := testutil.Context(t)
	admin, err := pgx.Connect(ctx, cluster.SuperuserURL(pgtest.TestDatabase))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, `select count(*) from pg_stat_activity
		where usename = $1 and backend_type = 'client backend'`, cluster.User).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// queuedQuery runs select 1 on c, which must wait for a server: it returns
// once the client heard it is queued, with the query's outcome to come.
func queuedQuery(t *testing.T, c *pgx.Conn, queued <-chan struct{}) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(testutil.Context(t), "select 1")
		done <- err
	}()
	select {
	case <-queued:
	case err := <-done:
		t.Fatalf("the query was not queued: it ended with %v", err)
	case <-time.After(eventually):
		t.Fatal("the client never heard it is queued")
	}
	return done
}

func wait(t *testing.T, done <-chan error, what string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(eventually):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestSIGHUPGrowsThePoolAndSetsTheLogLevelWithoutDroppingAConnectedClient(t *testing.T) {
	path := writeFile(t, configText(1))
	c := startChild(t, "--config", path)
	before := connect(t, c.url(pgtest.TestDatabase), nil)
	exec1(t, before, "the first client") // holds the only server (session pooling)
	queued := make(chan struct{}, 1)
	waiting := connect(t, c.url(pgtest.TestDatabase), queued)
	done := queuedQuery(t, waiting, queued)

	if strings.Contains(c.log.String(), "level=DEBUG") {
		t.Fatal("debug lines logged at log_level info")
	}
	rewrite(t, path, configText(2, `log_level = "debug"`))
	mark := c.signal(t, syscall.SIGHUP)
	c.waitLog(t, mark, "pool_size: 1 → 2")
	c.waitLog(t, mark, "log_level: info → debug")
	wait(t, done, "the queued client's query once the pool grew")
	if n := backends(t); n != 2 {
		t.Fatalf("%d server connections, want 2 after the reload", n)
	}
	exec1(t, before, "the client connected before the reload")
	c.alive(t)
	before.Close(testutil.Context(t))
	c.waitLog(t, mark, "level=DEBUG msg=\"session ended\"")
}

func TestSIGHUPWithABrokenFileChangesNothingAndNamesTheLine(t *testing.T) {
	path := writeFile(t, configText(1))
	c := startChild(t, "--config", path)
	first := connect(t, c.url(pgtest.TestDatabase), nil)
	exec1(t, first, "the first client")

	for _, tc := range []struct{ name, text, want string }{
		{"syntax error", strings.Replace(configText(3), "pool_size = 3", "pool_size = = 3", 1), "pgvalve.toml:3:"},
		{"invalid value", configText(3, `pool_mode = "sesion"`), "pgvalve.toml:6: pool_mode:"},
	} {
		rewrite(t, path, tc.text)
		mark := c.signal(t, syscall.SIGHUP)
		line := c.waitLog(t, mark, "config not reloaded")
		if !strings.Contains(line, tc.want) {
			t.Fatalf("%s: logged %q, want it to name %q", tc.name, line, tc.want)
		}
		if log := c.log.String()[mark:]; strings.Contains(log, "pool_size: 1 → 3") {
			t.Fatalf("%s: the valid part of a broken file was applied:\n%s", tc.name, log)
		}
	}
	// Still one server: a second client waits for it.
	queued := make(chan struct{}, 1)
	second := connect(t, c.url(pgtest.TestDatabase), queued)
	done := queuedQuery(t, second, queued)
	if n := backends(t); n != 1 {
		t.Fatalf("%d server connections, want the 1 of the running pool_size", n)
	}
	exec1(t, first, "the first client, after the broken reloads")
	c.alive(t)

	rewrite(t, path, configText(2)) // fixed: the waiting client gets a server
	mark := c.signal(t, syscall.SIGHUP)
	c.waitLog(t, mark, "pool_size: 1 → 2")
	wait(t, done, "the second client's query once the file was fixed")
}

func TestHUPUSR1AndUSR2NeverEndPgvalve(t *testing.T) {
	// Without --config, SIGHUP has nothing to reload.
	c := startChild(t, "--listen", "127.0.0.1:0", "--upstream", cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase),
		"--query-wait-timeout", "0")
	conn := connect(t, c.url(pgtest.TestDatabase), nil)
	exec1(t, conn, "before any signal")
	for _, step := range []struct {
		sig  syscall.Signal
		want string
	}{
		{syscall.SIGHUP, "nothing to reload"},
		{syscall.SIGUSR1, "PAUSE"},
		{syscall.SIGUSR1, "PAUSE"}, // twice is harmless
		{syscall.SIGUSR2, "RESUME"},
		{syscall.SIGUSR2, "RESUME"},
	} {
		mark := c.signal(t, step.sig)
		c.waitLog(t, mark, step.want)
		c.alive(t)
	}
	exec1(t, conn, "after the signals")
	fresh := connect(t, c.url(pgtest.TestDatabase), nil)
	exec1(t, fresh, "a client connected after the signals")
}

func TestSIGUSR1HoldsNewRequestsUntilSIGUSR2(t *testing.T) {
	c := startChild(t, "--config", writeFile(t, configText(2)))
	holder := connect(t, c.url(pgtest.TestDatabase), nil)
	exec1(t, holder, "before the pause") // keeps its server: session pooling
	mark := c.signal(t, syscall.SIGUSR1)
	c.waitLog(t, mark, "pool paused")
	queued := make(chan struct{}, 1)
	later := connect(t, c.url(pgtest.TestDatabase), queued)
	done := queuedQuery(t, later, queued) // a free slot, but paused
	exec1(t, holder, "a session holding its server during the pause")
	mark = c.signal(t, syscall.SIGUSR2)
	c.waitLog(t, mark, "RESUME")
	wait(t, done, "the held request after SIGUSR2")
}
