package loadgen

import (
	"net"
	"os"
	"sync"
	"testing"

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
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	return "postgres://nobody@" + ln.Addr().String() + "/x?sslmode=disable&connect_timeout=1"
}
