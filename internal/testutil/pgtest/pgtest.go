// Package pgtest runs a test package against a throwaway, real PostgreSQL
// server started by internal/pgcluster. Test packages use Run from TestMain:
//
//	var cluster *pgtest.Cluster
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &cluster, pgtest.Options{})) }
//
// The cluster itself lives in internal/pgcluster, which product code (such as
// `pgvalve demo`) may import; this package adds what only tests need: the
// testing and goleak glue.
package pgtest

import "github.com/pgvalve/pgvalve/internal/pgcluster"

// Cluster is a running throwaway PostgreSQL; see pgcluster.Cluster.
type Cluster = pgcluster.Cluster

// Options tune a cluster; see pgcluster.Options.
type Options = pgcluster.Options

const (
	// TestUser is the non-superuser login role a cluster gets by default.
	TestUser = pgcluster.DefaultUser
	// TestDatabase is the database a cluster gets by default, owned by TestUser.
	TestDatabase = pgcluster.DefaultDatabase
)

// Start is pgcluster.Start, for tests that need a cluster of their own
// besides the one Run provides. The caller must Stop it.
func Start(opts Options) (*Cluster, error) { return pgcluster.Start(opts) }

// FindBinDir is pgcluster.FindBinDir.
func FindBinDir() (string, error) { return pgcluster.FindBinDir() }

// FreePort is pgcluster.FreePort.
func FreePort() (int, error) { return pgcluster.FreePort() }

// TLS is a cluster's certificate; see pgcluster.TLS.
type TLS = pgcluster.TLS
