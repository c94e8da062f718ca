package testutil

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Connect opens a pgx connection to url that closes when the test ends,
// failing the test if it cannot within ContextTimeout.
func Connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ContextTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// MustExec runs sql on c, failing the test if it fails or takes longer
// than ContextTimeout. It works in Cleanup functions too.
func MustExec(t testing.TB, c *pgx.Conn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ContextTimeout)
	defer cancel()
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Hijack takes pc's socket over for a test that speaks the protocol by
// hand. pgconn may still have a background read in flight from a slow
// write during login (it starts one after 15 ms, as under a loaded CI
// machine); that read would swallow the first answer the test waits for.
// SyncConn stops it and leaves nothing buffered, as pgconn's Hijack asks.
func Hijack(ctx context.Context, pc *pgconn.PgConn) (*pgconn.HijackedConn, error) {
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, fmt.Errorf("sync before hijack: %w", err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	return hc, nil
}
