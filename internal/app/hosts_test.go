package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// secondHost is a second PostgreSQL beside the package's cluster, with the
// same test user and database; it trusts that user, so the password
// pgvalve logs in with on the first host works here too.
// A read-only one has default_transaction_read_only on for every login.
func secondHost(t *testing.T, readOnly bool) *pgtest.Cluster {
	t.Helper()
	c, err := pgtest.Start(pgtest.Options{User: cluster.User, Database: pgtest.TestDatabase,
		HBA: []string{"host all " + cluster.User + " 127.0.0.1/32 trust"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if readOnly {
		su := testutil.Connect(t, c.SuperuserURL(c.Database))
		ctx := testutil.Context(t)
		if _, err := su.Exec(ctx, "alter system set default_transaction_read_only = on"); err != nil {
			t.Fatal(err)
		}
		if _, err := su.Exec(ctx, "select pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// hostsRoute is a transaction-pooled route "app" over the given hosts.
func hostsRoute(poolSize int, attrs string, hosts ...*pgtest.Cluster) config.Config {
	cfg := sessionConfig(poolSize)
	cfg.PoolMode = config.PoolTransaction
	cfg.Upstream = ""
	var addrs []config.Address
	for _, h := range hosts {
		addrs = append(addrs, config.Address{Host: h.Host, Port: h.Port})
	}
	cfg.Databases = map[string]config.Database{"app": {Name: "app",
		Upstream: cluster.URL(cluster.User, cluster.Password, pgtest.TestDatabase), Hosts: addrs, TargetSessionAttrs: attrs}}
	return cfg
}

// serverPorts opens n clients through url, each holding a transaction
// open, and returns the port of the server each one got. The clients are
// closed when the test ends.
func serverPorts(t *testing.T, url string, n int) map[int]int {
	t.Helper()
	ctx := testutil.Context(t)
	ports := map[int]int{}
	for range n {
		c := testutil.Connect(t, url)
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var port int
		if err := tx.QueryRow(ctx, "select inet_server_port()").Scan(&port); err != nil {
			t.Fatal(err)
		}
		ports[port]++
	}
	return ports
}

func TestARouteOverTwoHostsSpreadsTransactionsByOutstandingLeases(t *testing.T) {
	second := secondHost(t, false)
	s := startValveOn(t, hostsRoute(4, "", cluster, second))
	ports := serverPorts(t, s, 4)
	if ports[cluster.Port] != 2 || ports[second.Port] != 2 {
		t.Fatalf("four open transactions went to ports %v; want two on %d and two on %d", ports, cluster.Port, second.Port)
	}
}

func TestTargetSessionAttrsPicksTheHostsThatFit(t *testing.T) {
	readOnly := secondHost(t, true)
	for _, tt := range []struct {
		attrs string
		want  *pgtest.Cluster
	}{
		{"read-write", cluster},
		{"primary", nil}, // both are primaries
		{"read-only", readOnly},
	} {
		t.Run(tt.attrs, func(t *testing.T) {
			// The host that does not fit comes first, so a choice that
			// ignored the attributes would use it.
			hosts := []*pgtest.Cluster{readOnly, cluster}
			if tt.want == readOnly {
				hosts = []*pgtest.Cluster{cluster, readOnly}
			}
			ports := serverPorts(t, startValveOn(t, hostsRoute(4, tt.attrs, hosts...)), 3)
			if tt.want == nil {
				if len(ports) != 2 {
					t.Fatalf("with two fitting hosts, transactions went to %v; want both", ports)
				}
				return
			}
			if ports[tt.want.Port] != 3 {
				t.Fatalf("target_session_attrs=%s sent transactions to ports %v; want all on %d", tt.attrs, ports, tt.want.Port)
			}
		})
	}
}

func TestNoHostThatFitsEndsTheWaitWith08006NamingTheHosts(t *testing.T) {
	cfg := hostsRoute(2, "standby", cluster) // a primary: no standby anywhere
	cfg.QueryWaitTimeout = 500 * time.Millisecond
	// The login itself waits for a server, as the first query would.
	_, err := pgx.Connect(testutil.Context(t), startValveOn(t, cfg))
	pgErr := wantCode(t, err, "08006")
	addr := fmt.Sprintf("%s:%d", cluster.Host, cluster.Port)
	if !strings.Contains(pgErr.Message, addr) || !strings.Contains(pgErr.Message, "target_session_attrs=standby") {
		t.Fatalf("message %q; want it to name %s and target_session_attrs=standby", pgErr.Message, addr)
	}
}

func TestAStoppedHostLeavesTheOtherServingWithoutAnError(t *testing.T) {
	second := secondHost(t, false)
	url := startValveOn(t, hostsRoute(4, "", cluster, second))
	ctx := testutil.Context(t)
	if err := second.StopServer("fast"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*25)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			for range 25 {
				var port int
				if err := c.QueryRow(ctx, "select inet_server_port()").Scan(&port); err != nil {
					errs <- err
				} else if port != cluster.Port {
					errs <- fmt.Errorf("a transaction ran on port %d, which is stopped", port)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("with one host stopped: %v", err)
	}
}

// startValveOn runs pgvalve with cfg and returns the URL of its route "app".
func startValveOn(t *testing.T, cfg config.Config) string {
	t.Helper()
	s, _ := startValve(t, cfg)
	return s.URL(cluster.User, cluster.Password, "app")
}

// hostUp reports whether the route "app"'s pool has host i in its choice.
func hostUp(s *valvetest.Server, i int) bool {
	st, ok := s.PoolStats("app/" + cluster.User)
	return ok && len(st.Hosts) > i && st.Hosts[i].Up && !st.Hosts[i].Unreachable
}

func TestAHostThatFailsItsCheckLeavesTheChoiceAndComesBackWhenItPasses(t *testing.T) {
	second := secondHost(t, false)
	cfg := hostsRoute(4, "", cluster, second)
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	cfg.AdminUsers = []string{"admin"}
	s, _ := startValve(t, cfg)
	url := s.URL(cluster.User, cluster.Password, "app")
	testutil.Connect(t, url) // the pool exists from the first login
	testutil.Eventually(t, "both hosts checked and up", func() bool { return hostUp(s, 0) && hostUp(s, 1) })
	if err := second.StopServer("fast"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the stopped host to leave the choice", func() bool { return !hostUp(s, 1) })
	admin, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Fatal(err)
	}
	rows := show(t, admin, "SHOW HOSTS")
	if len(rows) != 2 || rows[0]["state"] != "up" || rows[0]["role"] != "primary" ||
		rows[1]["host"] != fmt.Sprintf("127.0.0.1:%d", second.Port) || rows[1]["state"] != "down" || rows[1]["last_error"] == "" {
		t.Fatalf("SHOW HOSTS with the second host stopped: %v; want the first up as a primary, the second down with its error", rows)
	}
	if err := second.StartServer(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the host to come back", func() bool { return hostUp(s, 1) })
	if ports := serverPorts(t, url, 4); ports[second.Port] != 2 {
		t.Fatalf("after the host came back, four open transactions went to %v; want two on %d", ports, second.Port)
	}
}

func TestAHostThatTurnsReadOnlyLeavesAReadWriteRoute(t *testing.T) {
	second := secondHost(t, false)
	cfg := hostsRoute(4, "read-write", cluster, second)
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	s, _ := startValve(t, cfg)
	url := s.URL(cluster.User, cluster.Password, "app")
	if ports := serverPorts(t, url, 2); ports[second.Port] != 1 {
		st, _ := s.PoolStats("app/" + cluster.User)
		t.Fatalf("two open transactions went to %v; want one on each host; %+v", ports, st.Hosts)
	}
	su := testutil.Connect(t, second.SuperuserURL(second.Database))
	ctx := testutil.Context(t)
	setReadOnly := func(on string) {
		if _, err := su.Exec(ctx, "alter system set default_transaction_read_only = "+on); err != nil {
			t.Fatal(err)
		}
		if _, err := su.Exec(ctx, "select pg_reload_conf()"); err != nil {
			t.Fatal(err)
		}
	}
	setReadOnly("on")
	testutil.Eventually(t, "the read-only host to leave the read-write route", func() bool { return !hostUp(s, 1) })
	// Two of the pool's four servers are still held by the transactions above.
	if ports := serverPorts(t, url, 2); ports[cluster.Port] != 2 {
		t.Fatalf("with the second host read-only, transactions went to %v; want both on %d", ports, cluster.Port)
	}
	setReadOnly("off")
	testutil.Eventually(t, "the host to come back once writable", func() bool { return hostUp(s, 1) })
}

func TestTheLastHostThatFitsStaysInTheChoiceAndClientsGetItsError(t *testing.T) {
	readOnly, writable := secondHost(t, true), secondHost(t, false)
	cfg := hostsRoute(2, "read-write", readOnly, writable)
	cfg.HealthCheckPeriod = 50 * time.Millisecond
	cfg.QueryWaitTimeout = 500 * time.Millisecond
	cfg.AdminUsers = []string{"admin"}
	s, _ := startValve(t, cfg)
	url := s.URL(cluster.User, cluster.Password, "app")
	testutil.Connect(t, url)
	testutil.Eventually(t, "the read-only host to leave the read-write route", func() bool { return !hostUp(s, 0) })
	if err := writable.StopServer("fast"); err != nil {
		t.Fatal(err)
	}
	admin, err := consoleConn(t, s, "admin")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the writable host's check to fail", func() bool {
		rows := show(t, admin, "SHOW HOSTS")
		return len(rows) == 2 && rows[1]["last_error"] != ""
	})
	time.Sleep(5 * cfg.HealthCheckPeriod) // more checks fail: none may take it out
	if st, _ := s.PoolStats("app/" + cluster.User); !st.Hosts[1].Up {
		t.Fatalf("the last host that fits left the choice: %+v", st.Hosts)
	}
	// A login may be answered from what the pool already knows; the
	// first statement needs a server.
	if c, cerr := pgx.Connect(testutil.Context(t), url); cerr != nil {
		err = cerr
	} else {
		defer c.Close(context.Background())
		_, err = c.Exec(testutil.Context(t), "select 1")
	}
	pgErr := wantCode(t, err, "08006")
	if addr := fmt.Sprintf("127.0.0.1:%d", writable.Port); !strings.Contains(pgErr.Message, addr) {
		t.Fatalf("message %q; want it to name the last host, %s", pgErr.Message, addr)
	}
}

func TestListenOnAReadWriteRouteListensOnTheHostThatTakesTheNotifies(t *testing.T) {
	readOnly := secondHost(t, true)
	// The read-only host comes first: a listener there would get nothing,
	// or fail, since LISTEN is refused in a read-only transaction.
	url := startValveOn(t, hostsRoute(3, "read-write", readOnly, cluster))
	ctx := testutil.Context(t)
	listener, notifier := testutil.Connect(t, url), testutil.Connect(t, url)
	if _, err := listener.Exec(ctx, "listen host_events"); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "select pg_notify('host_events', 'on the primary')"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil || n.Payload != "on the primary" {
		t.Fatalf("the listener got %+v, %v; want the notification sent on the primary", n, err)
	}
}
