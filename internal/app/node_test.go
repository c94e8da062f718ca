package app_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// nodeDir is the Node project with the client programs (test/node).
const nodeDir = "../../test/node"

// requireNode returns the node binary, failing under CI=true and skipping
// loudly elsewhere when it or test/node's packages are missing.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		for _, p := range []string{"node_modules/pg", "node_modules/tsx", "generated/prisma/client.ts"} {
			if _, err = os.Stat(filepath.Join(nodeDir, p)); err != nil {
				break
			}
		}
	}
	if err == nil {
		return node
	}
	msg := fmt.Sprintf("node or test/node's packages are missing (%v); `make test` installs them (scripts/ensure-node.sh)", err)
	if os.Getenv("CI") == "true" {
		t.Fatalf("FAIL under CI=true: %s", msg)
	}
	t.Skipf("!!!!!!!! SKIPPING NODE CLIENT TESTS: %s !!!!!!!!", msg)
	return ""
}

// nodeConfig is transaction pooling with 5 servers for 50+ clients.
func nodeConfig() config.Config {
	cfg := txnConfig(5)
	cfg.MaxClientConn = 200
	return cfg
}

// runNode runs a program in test/node against url (as DATABASE_URL) and
// fails on a non-zero exit, logging its output either way.
func runNode(t *testing.T, node, url string, args ...string) {
	t.Helper()
	runNodeEnv(t, node, url, nil, args...)
}

// runNodeEnv is runNode with extra environment variables.
func runNodeEnv(t *testing.T, node, url string, env []string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = nodeDir
	cmd.Env = append(append(os.Environ(), "DATABASE_URL="+url), env...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("node %s:\n%s", strings.Join(args, " "), out)
	if ctx.Err() != nil {
		t.Fatalf("node %s: timed out after 3m", strings.Join(args, " "))
	}
	if err != nil {
		t.Fatalf("node %s: %v", strings.Join(args, " "), err)
	}
}

// TestNodePostgresNamedQueriesInTransactionMode: node-postgres's named
// queries, two clients sharing a name for different SQL and 50 pool clients,
// all on 5 servers.
func TestNodePostgresNamedQueriesInTransactionMode(t *testing.T) {
	node := requireNode(t)
	s, url := startValve(t, nodeConfig())
	runNode(t, node, url, "pg-named.mjs")
	s.WaitIdle(t, 10*time.Second)
}

// TestNodePrismaInTransactionMode: a Prisma 7 program (pg adapter with
// statement caching) with 50 concurrent workers on 5 servers.
func TestNodePrismaInTransactionMode(t *testing.T) {
	node := requireNode(t)
	schema, err := os.ReadFile(filepath.Join(nodeDir, "prisma/schema.sql"))
	if err != nil {
		t.Fatal(err)
	}
	// The tables belong to the test user, as if it had run the migration.
	owner := ownerConn(t)
	if _, err := owner.Exec(testutil.Context(t), string(schema)); err != nil {
		t.Fatalf("schema.sql: %v", err)
	}
	t.Cleanup(func() {
		if _, err := owner.Exec(context.Background(), `DROP TABLE IF EXISTS "Post", "User"`); err != nil {
			t.Errorf("dropping the Prisma tables: %v", err)
		}
	})
	s, url := startValve(t, nodeConfig())
	runNode(t, node, url, "--import", "tsx", "prisma/main.ts")
	s.WaitIdle(t, 10*time.Second)
}

// TestNodePostgresLogsInWithSCRAMOverTLS: node-postgres logs in with
// SCRAM-SHA-256 over TLS, verifying pgvalve's certificate.
func TestNodePostgresLogsInWithSCRAMOverTLS(t *testing.T) {
	node := requireNode(t)
	s, ca, _ := tlsValve(t, "require")
	// The program sets TLS itself: no sslmode=disable in the URL.
	url := strings.TrimSuffix(s.URL(cluster.User, cluster.Password, pgtest.TestDatabase), "?sslmode=disable")
	runNodeEnv(t, node, url, []string{"PGSSLROOTCERT=" + ca.File}, "pg-scram-tls.mjs")
}

// TestNodePostgresListenersGetEveryNotificationInTransactionMode:
// client.on('notification') gets every notification three clients send on
// three channels, in order per channel, while 20 clients keep a pool of 2
// busy with transactions; none after UNLISTEN (test/node/pg-notify.mjs).
func TestNodePostgresListenersGetEveryNotificationInTransactionMode(t *testing.T) {
	node := requireNode(t)
	s, url := startValve(t, txnConfig(2))
	runNode(t, node, url, "pg-notify.mjs")
	s.WaitIdle(t, 10*time.Second)
}
