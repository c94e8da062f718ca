package app_test

// The chaos suite's checkers: what every scenario asserts once its load
// has stopped (see chaos_test.go for the load itself).

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// checkOwn reports how a result is not the one its client asked for.
func checkOwn(tag, got, echo string) string {
	switch {
	case got != tag:
		return fmt.Sprintf("read back tag %q, wrote %q", got, tag)
	case echo != tag:
		return fmt.Sprintf("echo %q, sent %q", echo, tag)
	}
	return ""
}

// chaosRow is one (client, seq, tag) group of the table and its count.
type chaosRow struct {
	client, seq int
	tag         string
	n           int
}

// rowReport is what checkRows found.
type rowReport struct {
	committed, failed, inDoubt, inDoubtPresent, rows int
	violations                                       []string
}

// checkRows compares the table with what the clients saw: every committed
// transaction's row exists once, no failed one's does, an in-doubt one's
// exists at most once, and no row exists that no client wrote.
func checkRows(clients []*chaosClient, rows []chaosRow, tag func(id, seq int) string) rowReport {
	var r rowReport
	byID := map[int]*chaosClient{}
	for _, c := range clients {
		byID[c.id] = c
		for _, o := range c.outcomes {
			switch o {
			case committed:
				r.committed++
			case failed:
				r.failed++
			case inDoubt:
				r.inDoubt++
			}
		}
	}
	found := map[[2]int]bool{}
	for _, row := range rows {
		r.rows += row.n
		key := [2]int{row.client, row.seq}
		c := byID[row.client]
		switch {
		case c == nil || row.seq < 0 || row.seq >= len(c.outcomes) || row.tag != tag(row.client, row.seq):
			r.violations = append(r.violations, fmt.Sprintf("a row no client wrote: client %d seq %d tag %q", row.client, row.seq, row.tag))
			continue
		case found[key] || row.n > 1:
			r.violations = append(r.violations, fmt.Sprintf("client %d seq %d: %d rows, a statement was replayed", row.client, row.seq, row.n))
		}
		found[key] = true
		switch c.outcomes[row.seq] {
		case failed:
			r.violations = append(r.violations, fmt.Sprintf("client %d seq %d: the row of a failed transaction exists", row.client, row.seq))
		case inDoubt:
			r.inDoubtPresent++
		}
	}
	for _, c := range clients {
		for seq, o := range c.outcomes {
			if o == committed && !found[[2]int{c.id, seq}] {
				r.violations = append(r.violations, fmt.Sprintf("client %d seq %d: committed, but its row is missing", c.id, seq))
			}
		}
	}
	return r
}

// readRows reads the scenario's table straight from PostgreSQL.
func readRows(ctx context.Context, admin *pgx.Conn, table string) ([]chaosRow, error) {
	rows, err := admin.Query(ctx, "select client, seq, tag, count(*)::int from "+table+" group by 1, 2, 3")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (chaosRow, error) {
		var row chaosRow
		err := r.Scan(&row.client, &row.seq, &row.tag, &row.n)
		return row, err
	})
}

// chaosReport is one scenario's numbers, logged for RELIABILITY.md.
type chaosReport struct {
	rows       rowReport
	clients    int
	txns       int64
	lone, long int64 // lone INSERTs, INSERTs padded past the read buffer
	errs       map[string]int
	firstQuery time.Duration // a new client's connect and first query after the scenario
}

// verify checks every invariant after the load stopped and returns the
// numbers: own results, rows, no error only a pgvalve defect causes, the
// pool at rest, a new client answered. Leaks are checked separately, after
// pgvalve is stopped.
func (l *chaosLoad) verify(t *testing.T, s *valvetest.Server, admin *pgx.Conn) chaosReport {
	t.Helper()
	ctx := testutil.Context(t)
	var rep chaosReport
	l.mu.Lock()
	crossed := slices.Clone(l.mu.crossed)
	clients := slices.Clone(l.mu.clients)
	l.mu.Unlock()
	for _, c := range crossed {
		t.Errorf("a result that was not the client's own: %s", c)
	}
	rows, err := readRows(ctx, admin, l.table)
	if err != nil {
		t.Fatal(err)
	}
	rep.rows = checkRows(clients, rows, l.tag)
	reportSome(t, "rows", rep.rows.violations)
	if err := checkIdle(ctx, s, admin, 15*time.Second); err != nil {
		t.Errorf("pool not back to idle: %v", err)
	}
	checkShowsAtRest(t, s, admin)
	start := time.Now()
	if err := newClientAnswers(ctx, s); err != nil {
		t.Errorf("a new client after the scenario: %v", err)
	}
	rep.firstQuery = time.Since(start)
	rep.clients, rep.txns, rep.lone, rep.long = l.n, l.txns.Load(), l.lone.Load(), l.long.Load()
	rep.errs = errorsBy(l.errors(), nil)
	reportSome(t, "an error only a pgvalve defect causes", defectErrors(l.errors()))
	for _, e := range l.errors() {
		if e.code == "timeout" || e.code == "other" {
			t.Logf("client %d: %s in %s (transaction begun: %v): %v", e.client, e.code, e.phase, !e.begun.IsZero(), e.err)
		}
	}
	return rep
}

// reportSome fails t with the first 20 problems and a count of the rest.
func reportSome(t *testing.T, what string, problems []string) {
	t.Helper()
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more: %s", len(problems)-i, what)
			return
		}
		t.Errorf("%s: %s", what, p)
	}
}

// newClientAnswers connects a new client through pgvalve and runs a query.
func newClientAnswers(ctx context.Context, s *valvetest.Server) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(s.URL(cluster.User, cluster.Password, poolDB()))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeQuietly(c)
	var n int
	return c.QueryRow(ctx, "select 1").Scan(&n)
}

// logReport logs a scenario's numbers in one line RELIABILITY.md quotes.
func logReport(t *testing.T, rep chaosReport, extra string) {
	t.Helper()
	codes := make([]string, 0, len(rep.errs))
	for code, n := range rep.errs {
		codes = append(codes, fmt.Sprintf("%s=%d", code, n))
	}
	sort.Strings(codes)
	t.Logf("CHAOS %s: clients=%d txns=%d (lone %d, long %d) committed=%d failed=%d in-doubt=%d (%d of them in the table) rows=%d errors{%s} new-client=%s %s",
		t.Name(), rep.clients, rep.txns, rep.lone, rep.long, rep.rows.committed, rep.rows.failed, rep.rows.inDoubt, rep.rows.inDoubtPresent,
		rep.rows.rows, strings.Join(codes, " "), rep.firstQuery.Round(time.Millisecond), extra)
}

// chaosLeaks is goleak's verdict on goroutines started since before; call
// it after pgvalve, the relay and every client are closed. goleak itself
// waits under half a second for goroutines on their way out; a client's
// reader woken by its socket's close took longer once in CI, with two
// packages' tests sharing the two cores, so a goroutine counts as leaked
// only if it is still there after 5 s.
func chaosLeaks(before goleak.Option) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := goleak.Find(before)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
