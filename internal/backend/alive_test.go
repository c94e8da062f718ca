package backend_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

var transports = []struct {
	name string
	cfg  func() backend.Config
}{
	{"over TCP", tcpConfig},
	{"over a unix socket", unixConfig},
}

func TestAliveIsTrueForAFreshIdleConnection(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := dialWith(t, tr.cfg())
			for range 3 {
				if !c.Alive() {
					t.Fatalf("Alive() = false on a fresh idle connection, Broken() = %q", c.Broken())
				}
			}
			mustExec(t, c, "select 1")
			if !c.Alive() || !c.Reusable() {
				t.Errorf("after a query: Alive() = %v, Reusable() = %v", c.Alive(), c.Reusable())
			}
		})
	}
}

func TestAliveIsFalseOnceTheBackendIsTerminated(t *testing.T) {
	su := superuser(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := dialWith(t, tr.cfg())
			var ok bool
			if err := su.QueryRow(testutil.Context(t), "select pg_terminate_backend($1)", int32(c.PID())).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend(%d) = %v, %v", c.PID(), ok, err)
			}
			testutil.Eventually(t, "Alive() to notice the terminated backend", func() bool { return !c.Alive() })
			if c.Broken() == "" {
				t.Error("Broken() is empty after Alive found the connection dead")
			}
			if c.Reusable() || c.Alive() {
				t.Error("a dead connection is still Reusable or Alive")
			}
			if err := c.Exec(testutil.Context(t), "select 1"); err == nil {
				t.Error("Exec on a terminated connection succeeded")
			}
		})
	}
}

func TestAliveIsFalseWhenTheServerSentSomethingWhileIdle(t *testing.T) {
	su := superuser(t)
	c := dial(t)
	channel := unique("bt_chan")
	mustExec(t, c, "listen "+channel)
	if !c.Alive() {
		t.Fatal("Alive() = false before any notification")
	}
	if _, err := su.Exec(testutil.Context(t), "select pg_notify($1, 'payload')", channel); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "Alive() to see the unsolicited notification", func() bool { return !c.Alive() })
	if !strings.Contains(c.Broken(), "idle") {
		t.Errorf("Broken() = %q, want it to say the server sent data while idle", c.Broken())
	}
}

func TestAliveIsFalseAfterClose(t *testing.T) {
	c := dial(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.Alive() {
		t.Error("Alive() = true after Close")
	}
}

func TestCancelStopsTheRunningQueryAndLeavesTheConnectionUsable(t *testing.T) {
	su := superuser(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := dialWith(t, tr.cfg())
			ctx := testutil.Context(t)
			errc := make(chan error, 1)
			start := time.Now()
			go func() { errc <- c.Exec(ctx, "select pg_sleep(30)") }()
			pid := c.PID()
			testutil.Eventually(t, "the backend to run pg_sleep", func() bool {
				state, _ := backendState(t, su, pid)
				return state == "active"
			})
			if err := c.Cancel(ctx); err != nil {
				t.Fatalf("Cancel: %v", err)
			}
			select {
			case err := <-errc:
				if code := pgCode(err); code != "57014" {
					t.Fatalf("Exec of the cancelled query = %v, want SQLSTATE 57014", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the query was not cancelled")
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("the cancelled query took %v", d)
			}
			if !c.Reusable() || c.Broken() != "" {
				t.Errorf("after the cancel: Reusable() = %v, Broken() = %q", c.Reusable(), c.Broken())
			}
			mustExec(t, c, "select 1")
			if !c.Alive() {
				t.Error("Alive() = false after the cancel")
			}
		})
	}
}

func TestCancelOfAnIdleConnectionIsHarmless(t *testing.T) {
	c := dial(t)
	if err := c.Cancel(testutil.Context(t)); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	mustExec(t, c, "select 1")
}

func TestCloseIsIdempotentAndEndsTheBackend(t *testing.T) {
	su := superuser(t)
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			c := dialWith(t, tr.cfg())
			pid := c.PID()
			if _, found := backendState(t, su, pid); !found {
				t.Fatalf("backend %d is not in pg_stat_activity before Close", pid)
			}
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() { errs[i] = c.Close() })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("Close #%d = %v, want nil", i, err)
				}
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close after Close = %v, want nil", err)
			}
			if c.Reusable() || c.Alive() {
				t.Error("a closed connection is still Reusable or Alive")
			}
			if err := c.Exec(testutil.Context(t), "select 1"); !errors.Is(err, backend.ErrClosed) {
				t.Errorf("Exec after Close = %v, want ErrClosed", err)
			}
			if err := c.SyncParams(testutil.Context(t), startup(t, param("application_name", "x"))); !errors.Is(err, backend.ErrClosed) {
				t.Errorf("SyncParams after Close = %v, want ErrClosed", err)
			}
			testutil.Eventually(t, "the backend to leave pg_stat_activity", func() bool {
				_, found := backendState(t, su, pid)
				return !found
			})
		})
	}
}
