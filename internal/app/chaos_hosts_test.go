package app_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/faultnet"
)

// 8. Two hosts: the chaos load over a route whose two hosts are the test
// cluster itself and a relay to it, so both serve the one table the
// checks read, and pg_stat_activity counts both hosts' servers. The relay
// host is cut and refused, then stalled, while the direct host serves.
// The suite's invariants hold (every result the client's own, the rows
// exactly those committed, the pool at rest and agreeing with
// pg_stat_activity), only the transactions in flight on the cut host
// fail, and at rest each host's counts agree with what is really open:
// the relay's connections are the relay host's idle servers.
func TestChaosOneOfTwoHostsCutAndStalledMidLoad(t *testing.T) {
	relay, err := faultnet.New(net.JoinHostPort(cluster.Host, strconv.Itoa(cluster.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	poolSize := pick(10, 20)
	cfg := txnConfig(poolSize)
	cfg.Databases = map[string]config.Database{poolDB(): {Name: poolDB(), Upstream: cfg.Upstream,
		Hosts: []config.Address{{Host: cluster.Host, Port: cluster.Port}, {Host: "127.0.0.1", Port: relay.Port()}}}}
	cfg.Upstream = ""
	cfg.HealthCheckPeriod = 100 * time.Millisecond
	cfg.QueryWaitTimeout = 30 * time.Second
	cfg.ServerConnectTimeout = 2 * time.Second
	e := startChaos(t, "hosts", cfg, chaosOpts{relay: relay, txnTimeout: 5 * time.Second})
	e.progress("load over both hosts", pick[int64](200, 2000))
	relayHost := func() (up bool, chosen int64) {
		st, _ := e.s.PoolStats(poolName())
		return st.Hosts[1].Up && !st.Hosts[1].Unreachable, st.Hosts[1].Chosen
	}
	if _, chosen := relayHost(); chosen == 0 {
		t.Fatal("the relay host took no transaction before the fault")
	}

	cutting := time.Now()
	relay.Refuse(true)
	relay.Cut()
	cut := time.Now()
	testutil.Eventually(t, "the refused host to leave the choice", func() bool { up, _ := relayHost(); return !up })
	e.progress("load over the direct host alone", pick[int64](200, 2000))
	relay.Refuse(false)
	_, before := relayHost()
	testutil.Eventually(t, "the relay host to come back and take transactions", func() bool {
		up, chosen := relayHost()
		return up && chosen > before
	})
	e.progress("load over both hosts again", pick[int64](200, 2000))

	relay.Pause() // shorter than a check's timeout and the clients': nothing may fail
	time.Sleep(pick(500*time.Millisecond, 1500*time.Millisecond))
	relay.Resume()
	e.progress("load after the stall", pick[int64](200, 2000))
	e.load.stop()

	// Only transactions in flight on the relay host when it was cut fail
	// (at most one per server); none after, through the stall included.
	for _, bad := range outageErrors(e.load.errors(), cutting, cut, poolSize) {
		t.Error(bad)
	}
	if err := checkIdle(testutil.Context(t), e.s, e.admin, 15*time.Second); err != nil {
		t.Fatalf("pool not back to idle: %v", err)
	}
	testutil.EventuallyWithin(t, 15*time.Second, "each host's counts to agree with what is open", func() bool {
		st, _ := e.s.PoolStats(poolName())
		a, b := st.Hosts[0], st.Hosts[1]
		return a.Outstanding == 0 && b.Outstanding == 0 && a.Connecting == 0 && b.Connecting == 0 &&
			a.Idle+b.Idle == st.ServersIdle && relay.Conns() == b.Idle
	})
	st, _ := e.s.PoolStats(poolName())
	e.finish(fmt.Sprintf("hosts: direct chose %d, relay chose %d", st.Hosts[0].Chosen, st.Hosts[1].Chosen))
}
