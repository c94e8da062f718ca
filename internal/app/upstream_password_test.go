package app_test

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// The upstream URL need not carry the password, where ps would show it:
// as for psql, PGPASSWORD or the password file (PGPASSFILE, ~/.pgpass)
// supplies it; with neither the server refuses the login.
func TestTheUpstreamPasswordCanComeFromTheEnvironmentOrAPasswordFile(t *testing.T) {
	passfile := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(passfile, []byte("*:*:*:"+cluster.User+":"+cluster.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		env        map[string]string
		wantServed bool
	}{
		{"PGPASSWORD", map[string]string{"PGPASSWORD": cluster.Password, "PGPASSFILE": "/nonexistent"}, true},
		{"PGPASSFILE", map[string]string{"PGPASSWORD": "", "PGPASSFILE": passfile}, true},
		{"neither", map[string]string{"PGPASSWORD": "", "PGPASSFILE": "/nonexistent"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg := sessionConfig(1)
			u, err := url.Parse(cfg.Upstream)
			if err != nil {
				t.Fatal(err)
			}
			u.User = url.User(cluster.User) // no password in the URL
			cfg.Upstream = u.String()
			_, through := startValve(t, cfg)
			c, err := pgx.Connect(testutil.Context(t), through)
			if err == nil {
				defer c.Close(testutil.Context(t))
			}
			if tc.wantServed && err != nil {
				t.Fatalf("login through pgvalve: %v", err)
			}
			if !tc.wantServed && err == nil {
				t.Fatal("the server let pgvalve in with no password")
			}
			if c != nil {
				testutil.MustExec(t, c, "select 1")
			}
		})
	}
}
