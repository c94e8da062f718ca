// Package testutil holds the small helpers that tests in several packages
// share: a bounded context, waiting until something holds, a framed
// protocol message, and a pgx connection that closes with the test. Its
// subpackages hold the larger fixtures (pgtest: a throwaway PostgreSQL;
// valvetest: a running pgvalve; faultnet: a fault-injecting relay).
//
// It imports no pgvalve package, so any package's tests can use it, the
// in-package ones included. Every helper that takes a testing.TB reports
// failures at its caller's line.
package testutil

import (
	"context"
	"encoding/binary"
	"testing"
	"time"
)

// ContextTimeout bounds a Context, so that a hang fails its test instead of
// the whole run; nothing asserts on how fast anything is.
const ContextTimeout = time.Minute

// WaitTimeout is how long Eventually waits.
const WaitTimeout = 10 * time.Second

// Context returns t.Context() bounded by ContextTimeout. Like t.Context(),
// it is done when the test ends, before its Cleanup functions run; they
// should use context.Background().
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), ContextTimeout)
	t.Cleanup(cancel)
	return ctx
}

// Eventually waits until cond holds, for at most WaitTimeout, and fails
// the test if it does not: "timed out waiting for " + what, so what reads
// as "the server to close".
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, WaitTimeout, what, cond)
}

// EventuallyWithin is Eventually waiting at most timeout. It polls at once,
// then at intervals growing from 100 µs to 20 ms: quick for in-memory
// fakes, light on a real server.
func EventuallyWithin(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for pause := 100 * time.Microsecond; !cond(); pause = min(2*pause, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}

// Message is a PostgreSQL protocol message as it travels: the type byte,
// the length (itself included), then body.
func Message(typ byte, body string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}
