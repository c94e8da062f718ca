package loadgen

import (
	"os"
	"testing"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &cluster, pgtest.Options{})) }

// userURL is the test user's URL to the test cluster.
func userURL() string { return cluster.URL(cluster.User, cluster.Password, cluster.Database) }

// refusedURL is a URL where nothing listens.
func refusedURL(t *testing.T) string {
	t.Helper()
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "postgres://nobody@127.0.0.1:" + itoa(port) + "/x?sslmode=disable"
}

// silentURL is a URL whose server takes connections and never answers,
// as a host behind a dead link; logins through it give up after 1 s.
func silentURL(t *testing.T) string {
	return "postgres://nobody@" + testutil.SilentServer(t) + "/x?sslmode=disable&connect_timeout=1"
}
