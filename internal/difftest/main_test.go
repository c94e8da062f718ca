package difftest_test

import (
	"context"
	"flag"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/difftest"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// cluster is the real PostgreSQL both sides of every comparison talk to:
// directly in database directDB, through pgvalve in database valveDB.
var cluster *pgtest.Cluster

const (
	directDB = "diff_direct"
	valveDB  = "diff_valve"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Run(m, &cluster, pgtest.Options{}))
}

// A longer run is one flag away:
//
//	go test ./internal/difftest -run Generated -args -difftest.n=500 -difftest.seed=7
var (
	flagN       = flag.Int("difftest.n", 20, "generated conversations per pool mode and tracking setting")
	flagSeed    = flag.Uint64("difftest.seed", 1, "seed of the generated conversations")
	flagSteps   = flag.Int("difftest.steps", 10, "most steps of a generated conversation")
	flagClients = flag.Int("difftest.clients", 3, "most clients of a generated conversation, and the pool size")
	flagMaxSize = flag.Int("difftest.maxsize", 3<<20, "largest message a generated conversation sends or asks for, in bytes")
)

// stepTimeout bounds one step's answer on either side; it only turns a hang
// into a readable failure.
const stepTimeout = 60 * time.Second

// int4pl is the OID of the builtin int4pl, looked up once, for FunctionCall.
var (
	setupOnce sync.Once
	setupErr  error
	int4pl    uint32
)

// setup creates the two databases once per test binary.
func setup(t testing.TB) {
	t.Helper()
	setupOnce.Do(func() { setupErr = createDatabases() })
	if setupErr != nil {
		t.Fatalf("setup: %v", setupErr)
	}
}

func createDatabases() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, cluster.UserURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, db := range []string{directDB, valveDB} {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
			return err
		}
	}
	return conn.QueryRow(ctx, "SELECT 'int4pl'::regproc::oid").Scan(&int4pl)
}

// resetSchema gives both databases Schema's tables afresh.
func resetSchema(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, db := range []string{directDB, valveDB} {
		conn, err := pgx.Connect(ctx, cluster.URL(cluster.User, cluster.Password, db))
		if err != nil {
			t.Fatalf("reset %s: %v", db, err)
		}
		_, err = conn.Exec(ctx, difftest.Schema)
		conn.Close(ctx)
		if err != nil {
			t.Fatalf("reset %s: %v", db, err)
		}
	}
}

// cell is one pool mode and tracking setting of the matrix, with the
// profile of conversations it serves.
type cell struct {
	name     string
	mode     config.PoolMode
	prepared int // max_prepared_statements
	profile  difftest.Profile
}

// cells is the matrix. Session pooling runs once: pgvalve ignores
// max_prepared_statements there (a client keeps its server).
var cells = []cell{
	{"session pooling", config.PoolSession, 200, difftest.Profile{Transactions: true, Named: true, Sticky: true}},
	{"transaction pooling tracking 200 statements", config.PoolTransaction, 200, difftest.Profile{Transactions: true, Named: true}},
	{"transaction pooling tracking 2 statements", config.PoolTransaction, 2, difftest.Profile{Transactions: true, Named: true}},
	{"transaction pooling without tracking", config.PoolTransaction, 0, difftest.Profile{Transactions: true}},
	{"statement pooling tracking 200 statements", config.PoolStatement, 200, difftest.Profile{Named: true}},
	{"statement pooling tracking 2 statements", config.PoolStatement, 2, difftest.Profile{Named: true}},
	{"statement pooling without tracking", config.PoolStatement, 0, difftest.Profile{}},
}

// config is pgvalve for the cell with poolSize servers in front of the
// test cluster.
func (c cell) config(poolSize int) config.Config {
	cfg := config.Default()
	cfg.Upstream = cluster.URL(cluster.User, cluster.Password, valveDB)
	cfg.PoolMode = c.mode
	cfg.PoolSize = poolSize
	cfg.MaxPreparedStatements = c.prepared
	cfg.QueryWaitNotify = 0 // a queued client must not get a NOTICE PostgreSQL never sends
	// Every client may pin a server: the bound's 53400 is pgvalve's own
	// answer (internal/app's pin-limit tests check it).
	cfg.MaxPinnedServers = poolSize
	return cfg
}

func (c cell) start(t testing.TB, poolSize int) *valvetest.Server {
	return c.startWithKnobs(t, poolSize, nil)
}

func (c cell) startWithKnobs(t testing.TB, poolSize int, knobs *session.Knobs) *valvetest.Server {
	t.Helper()
	setup(t)
	return valvetest.StartWithKnobs(t, c.config(poolSize), knobs)
}

// options are the generator's bounds from the flags.
func options() difftest.Options {
	return difftest.Options{Clients: *flagClients, Steps: *flagSteps, MaxSize: *flagMaxSize, Int4pl: int4pl}
}

// replayer compares PostgreSQL with the pgvalve s.
func replayer(s *valvetest.Server) *difftest.Replayer {
	return &difftest.Replayer{
		Direct:  func(int) string { return cluster.URL(cluster.User, cluster.Password, directDB) },
		Valve:   func(int) string { return s.URL(cluster.User, cluster.Password, valveDB) },
		Timeout: stepTimeout,
	}
}

// replay runs conv against fresh tables and returns the differences found
// (the first, unless keepGoing). A harness failure ends the test.
func replay(t *testing.T, s *valvetest.Server, conv difftest.Conversation, keepGoing bool) []*difftest.Difference {
	t.Helper()
	return replayPaused(t, s, conv, keepGoing, 0)
}

// replayPaused is replay waiting pause before each step.
func replayPaused(t *testing.T, s *valvetest.Server, conv difftest.Conversation, keepGoing bool, pause time.Duration) []*difftest.Difference {
	t.Helper()
	resetSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := replayer(s)
	r.KeepGoing, r.Pause = keepGoing, pause
	diffs, err := r.Run(ctx, conv)
	if err != nil {
		t.Fatalf("the harness failed, not pgvalve: %v\nthe conversation:\n%s", err, conv.Summary(len(conv.Steps)))
	}
	s.WaitIdle(t, 30*time.Second)
	return diffs
}

// report fails the test with each difference, headed by label.
func report(t *testing.T, label string, diffs []*difftest.Difference) {
	t.Helper()
	for _, d := range diffs {
		t.Errorf("%s: pgvalve's answer differs from PostgreSQL's\n%s", label, d)
	}
}

// conversation builds a fixed conversation from steps; a step whose Ready
// and Extra are both 0 gets Ready from its batch's requests.
func conversation(steps ...difftest.Step) difftest.Conversation {
	conv := difftest.Conversation{}
	for _, st := range steps {
		if st.Ready == 0 && st.Extra == 0 {
			st.Ready = difftest.ReadyCount(st.Batch)
		}
		conv.Clients = max(conv.Clients, st.Client+1)
		conv.Steps = append(conv.Steps, st)
	}
	return conv
}

// on is a step: client sends batch.
func on(client int, batch ...difftest.Msg) difftest.Step {
	what := make([]string, 0, len(batch))
	for _, m := range batch {
		what = append(what, string(m.Type))
	}
	return difftest.Step{Client: client, Batch: batch, What: strings.Join(what, " ")}
}

// run is Parse, Bind and Execute of sql under statement name, with args.
func run(name, sql string, args ...string) []difftest.Msg {
	return []difftest.Msg{difftest.Parse(name, sql), difftest.Bind("", name, args...), difftest.Execute("", 0)}
}

// then appends messages to a batch.
func then(batch []difftest.Msg, more ...difftest.Msg) []difftest.Msg { return append(batch, more...) }
