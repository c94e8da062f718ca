package app_test

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/metrics"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// logLines collects pgvalve's JSON log lines.
type logLines struct{ testutil.Buffer }

// with returns the lines whose message is msg.
func (l *logLines) with(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// one waits for exactly one line with msg and returns it.
func (l *logLines) one(t *testing.T, msg string) map[string]any {
	t.Helper()
	testutil.Eventually(t, "a "+msg+" log line", func() bool { return len(l.with(t, msg)) > 0 })
	lines := l.with(t, msg)
	if len(lines) != 1 {
		t.Fatalf("%d %q lines, want 1: %v", len(lines), msg, lines)
	}
	return lines[0]
}

func startLogged(t *testing.T, cfg config.Config) (*valvetest.Server, string, *logLines) {
	t.Helper()
	logs := &logLines{}
	s := valvetest.StartLogged(t, cfg, logs)
	return s, s.URL(cluster.User, cluster.Password, pgtest.TestDatabase), logs
}

// A client whose wait for a server times out gets 53300; pgvalve logs one
// line that says how long it waited and how full the pool was, and counts
// the error by its SQLSTATE.
func TestAWaitTimeoutIsLoggedAndCounted(t *testing.T) {
	cfg := txnConfig(1)
	cfg.QueryWaitTimeout = 300 * time.Millisecond
	s, url, logs := startLogged(t, cfg)
	holder := connectTx(t, url)
	testutil.MustExec(t, holder, "begin")
	late := connectTx(t, url+"&application_name=late")
	_, err := late.Exec(testutil.Context(t), "select 1")
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "53300" {
		t.Fatalf("waiting client got %v, want 53300", err)
	}
	line := logs.one(t, "wait for a server timed out")
	if line["pool"] != pgtest.TestDatabase+"/"+cluster.User || line["clients_waiting"] != 1.0 ||
		line["servers_busy"] != 1.0 || line["application_name"] != "late" {
		t.Errorf("wait timeout line %v: want the pool, 1 client waiting, 1 server busy and the application", line)
	}
	if waited, _ := line["waited"].(float64); time.Duration(waited) < cfg.QueryWaitTimeout {
		t.Errorf("waited %v, want at least query_wait_timeout", time.Duration(waited))
	}
	if n := s.App.Source().ClientErrors()["53300"]; n != 1 {
		t.Errorf("53300 errors counted: %d, want 1", n)
	}
}

// A request slower than log_slow_query is logged with its pool,
// application_name and query head; a fast one is not.
func TestASlowQueryIsLoggedWithItsHead(t *testing.T) {
	cfg := txnConfig(1)
	cfg.LogSlowQuery = 150 * time.Millisecond
	_, url, logs := startLogged(t, cfg)
	c := connectTx(t, url+"&application_name=slowpoke")
	testutil.MustExec(t, c, "select 1")
	testutil.MustExec(t, c, "select pg_sleep(0.3)")
	line := logs.one(t, "slow query")
	if line["application_name"] != "slowpoke" || line["query"] != "select pg_sleep(0.3)" {
		t.Errorf("slow query line %v: want application slowpoke and the sleeping query", line)
	}
	if took, _ := line["duration"].(float64); time.Duration(took) < 300*time.Millisecond {
		t.Errorf("duration %v, want at least the 300ms slept", time.Duration(took))
	}
}

// A login over max_client_conn is refused with 53300 and logged, and the
// error is counted.
func TestARefusedLoginIsLoggedAndCounted(t *testing.T) {
	cfg := txnConfig(1)
	cfg.MaxClientConn = 1
	s, url, logs := startLogged(t, cfg)
	connectTx(t, url)
	_, err := pgx.Connect(testutil.Context(t), url+"&application_name=turned_away")
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); !ok || pgErr.Code != "53300" {
		t.Fatalf("second client got %v, want 53300", err)
	}
	line := logs.one(t, "login refused")
	if line["user"] != cluster.User || line["code"] != "53300" {
		t.Errorf("refusal line %v: want the user and 53300", line)
	}
	if n := s.App.Source().ClientErrors()["53300"]; n != 1 {
		t.Errorf("53300 errors counted: %d, want 1", n)
	}
}

// A server connection closed is counted and logged with its reason: one
// closed by server_idle_timeout, and one whose backend was terminated
// under an idle transaction.
func TestServersClosedAreCountedAndLoggedByReason(t *testing.T) {
	cfg := txnConfig(2)
	cfg.ServerIdleTimeout = 200 * time.Millisecond
	s, url, logs := startLogged(t, cfg)
	c := connectTx(t, url)
	testutil.MustExec(t, c, "select 1")
	testutil.Eventually(t, "the idle server to be closed", func() bool {
		return poolView(t, s).ServersClosed["idle_timeout"] == 1
	})
	line := logs.one(t, "server closed")
	if line["reason"] != "idle_timeout" {
		t.Errorf("close line %v, want reason idle_timeout", line)
	}

	testutil.MustExec(t, c, "begin")
	var pid int
	if err := c.QueryRow(testutil.Context(t), "select pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	admin := direct(t)
	if _, err := admin.Exec(testutil.Context(t), "select pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(testutil.Context(t), "select 1"); err == nil {
		t.Fatal("a query in a transaction whose backend was terminated succeeded")
	}
	testutil.Eventually(t, "the lost server to be counted", func() bool {
		closed := poolView(t, s).ServersClosed
		return len(closed) == 2 && closed["idle_timeout"] == 1
	})
	for r := range poolView(t, s).ServersClosed {
		if r == "not_reusable" {
			t.Errorf("the terminated server was closed as merely not reusable; want why: %v", poolView(t, s).ServersClosed)
		}
	}
	if n := len(logs.with(t, "server closed")); n != 2 {
		t.Errorf("%d server closed lines, want 2", n)
	}
}

// What a real pgvalve exports after a wait timeout and a server closed
// for idleness passes the strict text parser, with the error counted by
// its SQLSTATE, the close by its reason and the bytes both ways.
func TestMetricsOfARealPoolParseStrictlyAndCountErrorsClosesAndBytes(t *testing.T) {
	cfg := txnConfig(1)
	cfg.QueryWaitTimeout = 300 * time.Millisecond
	cfg.ServerIdleTimeout = 300 * time.Millisecond
	s, url, _ := startLogged(t, cfg)
	holder := connectTx(t, url)
	testutil.MustExec(t, holder, "begin")
	_, err := connectTx(t, url).Exec(testutil.Context(t), "select 1")
	wantCode(t, err, "53300")
	testutil.MustExec(t, holder, "commit")
	testutil.Eventually(t, "the idle server to close", func() bool { return poolView(t, s).ServersClosed["idle_timeout"] == 1 })

	srv := httptest.NewServer(metrics.NewHandler(s.App.Source()))
	defer srv.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(scrape(t, srv.URL+"/metrics")))
	if err != nil {
		t.Fatalf("the exporter's text does not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, m := range fams[name].GetMetric() {
			match := true
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					match = false
				}
			}
			if match {
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if n := value("pgvalve_client_errors_total", map[string]string{"sqlstate": "53300"}); n != 1 {
		t.Errorf("53300 errors exported: %v, want 1", n)
	}
	if n := value("pgvalve_server_connections_closed_total", map[string]string{"reason": "idle_timeout"}); n != 1 {
		t.Errorf("servers closed for idle_timeout exported: %v, want 1", n)
	}
	p := poolView(t, s)
	if n := value("pgvalve_received_bytes_total", nil); n != float64(p.BytesReceived) || n == 0 {
		t.Errorf("received bytes exported %v, the pool counted %d", n, p.BytesReceived)
	}
	if n := value("pgvalve_sent_bytes_total", nil); n != float64(p.BytesSent) || n == 0 {
		t.Errorf("sent bytes exported %v, the pool counted %d", n, p.BytesSent)
	}
}
