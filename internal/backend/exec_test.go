package backend_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/wire"
)

func TestExecSucceedsForGoodStatements(t *testing.T) {
	c := dial(t)
	for _, sql := range []string{
		"select 1",
		"select generate_series(1, 1000)",
		"select 1; select 2; select 3",
		"do $$ begin raise notice 'a notice is dropped'; end $$",
		"set work_mem = '8MB'",
		"",
		"discard all",
	} {
		if err := c.Exec(testutil.Context(t), sql); err != nil {
			t.Errorf("Exec(%q) = %v, want nil", sql, err)
		}
		if !c.Reusable() || c.TxStatus() != 'I' {
			t.Errorf("after %q: Reusable() = %v, TxStatus() = %q", sql, c.Reusable(), c.TxStatus())
		}
	}
}

func TestExecReturnsTheServerErrorAndLeavesTheConnectionUsable(t *testing.T) {
	c := dial(t)
	for _, tc := range []struct{ sql, code string }{
		{"select 1/0", "22012"},
		{"select * from no_such_table", "42P01"},
		{"selec 1", "42601"},
		{"select 1; select 1/0; select 2", "22012"},
		{"do $$ begin raise exception 'custom' using errcode = 'P0042'; end $$", "P0042"},
	} {
		err := c.Exec(testutil.Context(t), tc.sql)
		if code := pgCode(err); code != tc.code {
			t.Errorf("Exec(%q) = %v, want a *pgconn.PgError with code %s", tc.sql, err, tc.code)
		}
		if !c.Reusable() || c.Broken() != "" || c.TxStatus() != 'I' {
			t.Errorf("after %q: Reusable() = %v, Broken() = %q, TxStatus() = %q",
				tc.sql, c.Reusable(), c.Broken(), c.TxStatus())
		}
		mustExec(t, c, "select 1")
	}
}

func TestExecTracksTheTransactionStatus(t *testing.T) {
	c := dial(t)
	for _, step := range []struct {
		sql      string
		code     string
		status   byte
		reusable bool
	}{
		{"begin", "", 'T', false},
		{"select 1", "", 'T', false},
		{"select 1/0", "22012", 'E', false},
		{"select 1", "25P02", 'E', false},
		{"rollback", "", 'I', true},
		{"begin; select 1", "", 'T', false},
		{"commit", "", 'I', true},
	} {
		err := c.Exec(testutil.Context(t), step.sql)
		if code := pgCode(err); code != step.code || (step.code == "" && err != nil) {
			t.Errorf("Exec(%q) = %v, want code %q", step.sql, err, step.code)
		}
		if c.TxStatus() != step.status || c.Reusable() != step.reusable {
			t.Errorf("after %q: TxStatus() = %q, Reusable() = %v; want %q, %v",
				step.sql, c.TxStatus(), c.Reusable(), step.status, step.reusable)
		}
	}
}

func TestExecTracksParameterStatusChanges(t *testing.T) {
	c := dial(t)
	for _, tc := range []struct{ sql, name, want string }{
		{"set application_name = 'x'", "application_name", "x"},
		{"set timezone = 'Asia/Tokyo'", "TimeZone", "Asia/Tokyo"},
		{"set datestyle = 'German, DMY'", "DateStyle", "German, DMY"},
		{"select set_config('application_name', 'via set_config', false)", "application_name", "via set_config"},
		{"reset application_name", "application_name", ""},
	} {
		mustExec(t, c, tc.sql)
		if got := c.Param(tc.name); got != tc.want {
			t.Errorf("after %q: Param(%q) = %q, want %q", tc.sql, tc.name, got, tc.want)
		}
	}
}

func TestExecHonoursTheContextDeadlineAndMarksTheConnectionBroken(t *testing.T) {
	c := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Exec(ctx, "select pg_sleep(10)")
	if err == nil || pgCode(err) != "" {
		t.Fatalf("Exec past its deadline = %v, want an I/O error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Exec returned after %v, long past its 200ms deadline", d)
	}
	if c.Broken() == "" || c.Reusable() {
		t.Errorf("after a timeout: Broken() = %q, Reusable() = %v; want broken", c.Broken(), c.Reusable())
	}
	if err := c.Exec(testutil.Context(t), "select 1"); err == nil {
		t.Error("Exec on a broken connection succeeded")
	}
}

func TestExecRefusesCopyAndMarksTheConnectionBroken(t *testing.T) {
	c := dial(t)
	err := c.Exec(testutil.Context(t), "copy (select 1) to stdout")
	if err == nil {
		t.Fatal("Exec of COPY TO STDOUT succeeded")
	}
	if c.Broken() == "" || c.Reusable() {
		t.Errorf("after COPY: Broken() = %q, Reusable() = %v; want broken", c.Broken(), c.Reusable())
	}
}

func TestMarkBrokenKeepsTheFirstReasonAndStopsExec(t *testing.T) {
	c := dial(t)
	c.MarkBroken(reason.RelayFailed, "first reason")
	c.MarkBroken(reason.QueryTimeout, "second reason")
	if c.Broken() != "relay failed: first reason" || c.BrokenReason() != reason.RelayFailed {
		t.Errorf("Broken() = %q, want the first reason", c.Broken())
	}
	if c.Reusable() || c.Alive() {
		t.Error("a broken connection is still Reusable or Alive")
	}
	err := c.Exec(testutil.Context(t), "select 1")
	if err == nil || !strings.Contains(err.Error(), "first reason") || errors.Is(err, backend.ErrClosed) {
		t.Errorf("Exec on a broken connection = %v, want an error naming the reason", err)
	}
}

// message encodes m and returns the frame the relay would pass to Observe.
func message(t *testing.T, m pgproto3.BackendMessage) wire.Frame {
	t.Helper()
	buf, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return wire.Frame{Type: buf[0], Len: len(buf) - 5, Body: buf[5:]}
}

func TestObserveTracksForwardedReadyForQueryAndParameterStatus(t *testing.T) {
	c := dial(t)
	c.Observe(message(t, &pgproto3.ReadyForQuery{TxStatus: 'T'}))
	if c.TxStatus() != 'T' || c.Reusable() {
		t.Errorf("after ReadyForQuery(T): TxStatus() = %q, Reusable() = %v", c.TxStatus(), c.Reusable())
	}
	c.Observe(message(t, &pgproto3.ParameterStatus{Name: "application_name", Value: "observed"}))
	if got := c.Param("application_name"); got != "observed" {
		t.Errorf(`Param("application_name") = %q, want "observed"`, got)
	}
	// A streamed frame (nil Body) and unrelated messages change nothing.
	c.Observe(wire.Frame{Type: 'Z', Len: 1})
	c.Observe(message(t, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}))
	if c.TxStatus() != 'T' {
		t.Errorf("TxStatus() = %q after frames Observe should ignore", c.TxStatus())
	}
	c.Observe(message(t, &pgproto3.ReadyForQuery{TxStatus: 'I'}))
	if c.TxStatus() != 'I' || !c.Reusable() {
		t.Errorf("after ReadyForQuery(I): TxStatus() = %q, Reusable() = %v", c.TxStatus(), c.Reusable())
	}
}

func TestExecReadsPastMessagesLargerThanItsBuffer(t *testing.T) {
	c := dial(t)
	ctx := testutil.Context(t)
	if err := c.Exec(ctx, "select repeat('x', 100000)"); err != nil {
		t.Fatalf("a large row must be skipped, not fail: %v", err)
	}
	if !c.Reusable() {
		t.Fatalf("the connection stays usable: %s", c.Broken())
	}
	err := c.Exec(ctx, "do $$ begin raise exception '%', repeat('y', 50000); end $$")
	if err == nil {
		t.Fatal("a large error must still be reported")
	}
	if err := c.Exec(ctx, "select 1"); err != nil || !c.Reusable() {
		t.Fatalf("after a large error the connection stays usable: %v %s", err, c.Broken())
	}
}

func TestQueryRowReturnsTheFirstRowAsTextWithNullAsNil(t *testing.T) {
	c := dial(t)
	row, err := c.QueryRow(testutil.Context(t), "select 1, null::text, 'x' union all select 2, 'y', 'z'")
	if err != nil {
		t.Fatal(err)
	}
	if len(row) != 3 || row[0] == nil || *row[0] != "1" || row[1] != nil || row[2] == nil || *row[2] != "x" {
		t.Fatalf("QueryRow = %v; want [1 NULL x]", row)
	}
	if !c.Reusable() || c.TxStatus() != 'I' {
		t.Fatalf("after QueryRow: Reusable() = %v, TxStatus() = %q", c.Reusable(), c.TxStatus())
	}
}

func TestQueryRowReportsNoRowAnErrorAndARowTooLarge(t *testing.T) {
	c := dial(t)
	ctx := testutil.Context(t)
	if _, err := c.QueryRow(ctx, "select 1 where false"); err == nil || !strings.Contains(err.Error(), "no row") {
		t.Errorf("QueryRow of no row = %v; want an error saying so", err)
	}
	if _, err := c.QueryRow(ctx, "select 1/0"); pgCode(err) != "22012" {
		t.Errorf("QueryRow(1/0) = %v; want 22012", err)
	}
	if _, err := c.QueryRow(ctx, "select repeat('x', 100000)"); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("QueryRow of a 100 kB row = %v; want an error saying it is too large", err)
	}
	// Each answer was read to its end: the connection goes on.
	if row, err := c.QueryRow(ctx, "select 7"); err != nil || *row[0] != "7" {
		t.Fatalf("QueryRow after the errors = %v, %v; want 7", row, err)
	}
}
