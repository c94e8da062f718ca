package testutil_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// recorder is a testing.TB that records a Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(errFatal) // as t.Fatalf's Goexit would, ends the helper
}

var errFatal = errors.New("Fatalf")

// fails runs f with r and reports whether it called Fatalf.
func fails(r *recorder, f func()) (failed bool) {
	defer func() {
		if p := recover(); p != nil {
			if p != errFatal {
				panic(p)
			}
			failed = true
		}
	}()
	f()
	return false
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var polls atomic.Int32
	testutil.Eventually(t, "the third poll", func() bool { return polls.Add(1) == 3 })
	if n := polls.Load(); n != 3 {
		t.Fatalf("polled %d times; want 3", n)
	}
}

func TestEventuallyWithinFailsNamingWhatItWaitedFor(t *testing.T) {
	r := &recorder{TB: t}
	start := time.Now()
	if !fails(r, func() { testutil.EventuallyWithin(r, 50*time.Millisecond, "a miracle", func() bool { return false }) }) {
		t.Fatal("a condition that never holds did not fail the test")
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("gave up after %s; want about 50ms", d)
	}
	if !strings.Contains(r.failed, "a miracle") {
		t.Fatalf("failure %q does not say what it waited for", r.failed)
	}
}

func TestContextEndsWithTheTest(t *testing.T) {
	var ctx interface{ Err() error }
	t.Run("inner", func(t *testing.T) {
		c := testutil.Context(t)
		if _, ok := c.Deadline(); !ok {
			t.Fatal("no deadline")
		}
		ctx = c
	})
	if ctx.Err() == nil {
		t.Fatal("the context outlived its test")
	}
}

func TestMessageIsFramedWithItsLength(t *testing.T) {
	got := testutil.Message('Q', "select 1\x00")
	want := append([]byte{'Q', 0, 0, 0, 13}, "select 1\x00"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Message = %q; want %q", got, want)
	}
}
