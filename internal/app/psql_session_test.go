package app_test

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// psqlSession is psql reading its script from a pipe, so a test can send
// statements one by one and read what psql prints.
type psqlSession struct {
	t     *testing.T
	in    io.WriteCloser
	lines chan string
	cmd   *exec.Cmd
}

// startPsql runs psql (unaligned, tuples only) through pgvalve on port.
func startPsql(t *testing.T, port int) *psqlSession {
	t.Helper()
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s", port, cluster.User, pgtest.TestDatabase)
	cmd := exec.Command(cluster.Psql(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-")
	cmd.Env = []string{"PGPASSWORD=" + cluster.Password, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=20"}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &psqlSession{t: t, in: in, lines: make(chan string, 1024), cmd: cmd}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *psqlSession) send(sql string) {
	p.t.Helper()
	if _, err := io.WriteString(p.in, sql+"\n"); err != nil {
		p.t.Fatalf("writing to psql: %v", err)
	}
}

// line is psql's next line of output, waiting up to 10 seconds.
func (p *psqlSession) line() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatal("psql ended")
		}
		return l
	case <-time.After(10 * time.Second):
		p.t.Fatal("psql printed nothing for 10s")
	}
	return ""
}

// query sends one statement returning one row and reads that row, skipping
// (and returning) any notification lines printed before it.
func (p *psqlSession) query(sql string) (row string, notes []string) {
	p.t.Helper()
	p.send(sql)
	for {
		l := p.line()
		if !strings.HasPrefix(l, "Asynchronous notification") {
			return l, notes
		}
		notes = append(notes, l)
	}
}

func (p *psqlSession) close() {
	_ = p.in.Close()
	done := make(chan error, 1)
	go func() {
		for range p.lines {
		}
		done <- p.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			p.t.Errorf("psql: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		p.t.Error("psql did not end")
	}
}

// psql in transaction pooling: its LISTEN gets the notification its own
// NOTIFY sends (psql prints it), and a SET persists across statements that
// run on different servers while 10 clients keep a pool of 2 busy.
func TestPsqlListensAndKeepsItsSettingsInTransactionMode(t *testing.T) {
	s, url := startValve(t, txnConfig(2))
	stop := busy(t, url, 10)
	defer stop()
	p := startPsql(t, s.Port())
	p.send("LISTEN psql_events;")
	p.send("SET statement_timeout = '5s';")
	p.send("NOTIFY psql_events, 'hello from psql';")
	var notes []string
	pids := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 50 || len(notes) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d statements: no notification printed", i)
		}
		row, n := p.query("SELECT current_setting('statement_timeout') || ' ' || pg_backend_pid();")
		notes = append(notes, n...)
		setting, pid, _ := strings.Cut(row, " ")
		if setting != "5s" {
			t.Fatalf("statement %d: psql printed %q, want statement_timeout 5s", i, row)
		}
		pids[pid] = true
	}
	if len(pids) < 2 {
		t.Fatalf("every statement ran on one backend (%v): the test proves nothing", pids)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], `"psql_events" with payload "hello from psql" received`) {
		t.Fatalf("psql printed %q, want one notification", notes)
	}
	if row, _ := p.query("SHOW statement_timeout;"); row != "5s" {
		t.Fatalf("SHOW statement_timeout: %q", row)
	}
	p.send("RESET statement_timeout;")
	if row, _ := p.query("SHOW statement_timeout;"); row != "0" {
		t.Fatalf("SHOW statement_timeout after RESET: %q", row)
	}
}
