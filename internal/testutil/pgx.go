package testutil

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
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
