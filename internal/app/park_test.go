package app_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/metrics"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// parkingConfig parks a client idle for 20 ms.
func parkingValve(t *testing.T, pool int) (*valvetest.Server, string) {
	cfg := txnConfig(pool)
	cfg.ClientParkDelay = 20 * time.Millisecond
	cfg.AdminUsers = []string{"admin"}
	return startValve(t, cfg)
}

// waitParked waits until n clients are parked.
func waitParked(t *testing.T, s *valvetest.Server, n int) {
	t.Helper()
	testutil.EventuallyWithin(t, 10*time.Second, "idle clients to park", func() bool {
		now, _ := s.App.Parking()
		return now == n
	})
}

// A client parked while idle carries on where it stopped: its prepared
// statements (pgx's statement cache: named Parse once, then Bind), the
// settings it made, its transactions.
func TestAParkedClientCarriesOnWhereItStopped(t *testing.T) {
	s, url := parkingValve(t, 2)
	ctx := testutil.Context(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	testutil.MustExec(t, c, "set application_name = 'parked'")
	var n int
	if err := c.QueryRow(ctx, "select $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("before parking: %d, %v", n, err)
	}
	for round := range 3 {
		waitParked(t, s, 1)
		if err := c.QueryRow(ctx, "select $1::int + 1", round).Scan(&n); err != nil || n != round+1 {
			t.Fatalf("the cached statement after parking %d: got %d, %v", round, n, err)
		}
		var app string
		if err := c.QueryRow(ctx, "show application_name").Scan(&app); err != nil || app != "parked" {
			t.Fatalf("the client's setting after parking: %q, %v", app, err)
		}
	}
	// A transaction open across a pause keeps its server: it never parks.
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "create temp table held(x int)"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if now, _ := s.App.Parking(); now != 0 {
		t.Fatal("a client inside a transaction was parked")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, total := s.App.Parking(); total < 3 {
		t.Fatalf("parked %d times, want at least 3", total)
	}
}

// A parked client that hangs up ends like any other: nothing of it stays
// listed, and its goroutine-less wait leaves no server held.
func TestAParkedClientThatHangsUpIsForgotten(t *testing.T) {
	s, url := parkingValve(t, 1)
	c := connectTx(t, url)
	testutil.MustExec(t, c, "select 1")
	waitParked(t, s, 1)
	srv := httptest.NewServer(metrics.NewHandler(s.App.Source()))
	defer srv.Close()
	// The client may have parked once more, between its login and its
	// query, on a slow machine: the total is what the lot counted.
	_, parks := s.App.Parking()
	body := scrape(t, srv.URL+"/metrics")
	if !strings.Contains(body, "pgvalve_clients_parked 1\n") ||
		!strings.Contains(body, fmt.Sprintf("pgvalve_client_parks_total %d\n", parks)) || parks == 0 {
		t.Fatalf("/metrics does not count the parked client (%d parks so far)", parks)
	}
	c.Close(context.Background())
	waitParked(t, s, 0)
	testutil.EventuallyWithin(t, 10*time.Second, "the client to leave the list", func() bool {
		return len(s.App.Sessions()) == 0
	})
	s.WaitIdle(t, 10*time.Second)
}

// Whatever ends an idle client ends a parked one: KILL_CLIENT (57P01),
// client_idle_timeout (57P05), and a shutdown.
func TestParkedClientsAreEndedAsIdleOnes(t *testing.T) {
	t.Run("KILL_CLIENT", func(t *testing.T) {
		s, url := parkingValve(t, 1)
		victim := connectTx(t, url+"&application_name=victim")
		testutil.MustExec(t, victim, "select 1")
		admin, err := consoleConn(t, s, "admin")
		if err != nil {
			t.Fatal(err)
		}
		waitParked(t, s, 1) // the console never parks
		var id string
		for _, row := range show(t, admin, "SHOW CLIENTS") {
			if row["application_name"] == "victim" {
				id = row["id"]
			}
		}
		testutil.MustExec(t, admin, "KILL_CLIENT "+id)
		// Ended at once, not at its next message.
		waitParked(t, s, 0)
		testutil.EventuallyWithin(t, 10*time.Second, "the victim to leave the list", func() bool {
			return len(s.App.Sessions()) == 1 // the console
		})
		_, err = victim.Exec(testutil.Context(t), "select 1")
		wantCode(t, err, "57P01")
	})
	t.Run("client_idle_timeout", func(t *testing.T) {
		cfg := txnConfig(1)
		cfg.ClientParkDelay = 20 * time.Millisecond
		cfg.ClientIdleTimeout = 500 * time.Millisecond
		s, _ := startValve(t, cfg)
		c := dialRaw(t, s)
		c.login()
		c.simpleQuery("select 1")
		waitParked(t, s, 1)
		c.expectFatalThenEOF("57P05")
		s.WaitIdle(t, 10*time.Second)
	})
	t.Run("shutdown", func(t *testing.T) {
		s, url := parkingValve(t, 1)
		c := connectTx(t, url)
		testutil.MustExec(t, c, "select 1")
		waitParked(t, s, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s.App.Shutdown(ctx) // returns only once the parked client has ended
		if ctx.Err() != nil {
			t.Fatal("the shutdown waited out its timeout: the parked client was never woken")
		}
		if _, err := c.Exec(testutil.Context(t), "select 1"); err == nil {
			t.Fatal("a parked client outlived the shutdown")
		}
	})
}

// A client listening through the pool's shared connection gets its
// notifications while parked.
func TestAParkedListenerGetsItsNotifications(t *testing.T) {
	s, url := parkingValve(t, 1)
	ctx := testutil.Context(t)
	listener := connectTx(t, url)
	testutil.MustExec(t, listener, "listen parked_channel")
	waitParked(t, s, 1)
	testutil.MustExec(t, direct(t), "notify parked_channel, 'while parked'")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil || n.Payload != "while parked" {
		t.Fatalf("notification to a parked client: %+v, %v", n, err)
	}
}

// Once a wave of clients has logged in and parked, pgvalve gives back to
// the system the memory their logins left behind, instead of keeping it
// as room for a heap twice the live one.
func TestAWaveOfParkedClientsGivesItsLoginsMemoryBack(t *testing.T) {
	s, _ := parkingValve(t, 2)
	const clients = 300 // more than a wave's least (giveBackAfter)
	for i := range clients {
		c, err := loggedIn(s.Addr.String())
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		defer c.Close()
	}
	waitParked(t, s, clients)
	testutil.EventuallyWithin(t, 20*time.Second, "the memory to be given back", func() bool {
		return s.App.MemoryGivenBack() > 0
	})
}
