package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/pgcluster"
)

// cmdDemo runs pgvalve in front of a throwaway PostgreSQL (or the given
// --upstream), prints how to connect, and cleans up on Ctrl-C or SIGTERM.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	secured := slices.Contains(args, secureFlag)
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == secureFlag })
	cfg, err := loadConfig("demo", args, stderr)
	if err != nil && !errors.Is(err, errNoUpstream) {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "pgvalve demo: %v\n", err)
		return 2
	}
	// The demo shows pgvalve's own view too: an admin user for the console
	// and the live page, unless the flags or file chose otherwise.
	if len(cfg.AdminUsers) == 0 {
		cfg.AdminUsers = []string{"admin"}
	}
	if cfg.MetricsListen == "" {
		cfg.MetricsListen = "127.0.0.1:9187"
	}
	level := levelVar(cfg.LogLevel)
	log := newLogger(stderr, cfg.LogFormat, level)
	user, db, password, direct := "app", "app", "", ""
	if cfg.Upstream == "" && len(cfg.Databases) == 0 {
		fmt.Fprintln(stderr, "pgvalve demo: starting a throwaway PostgreSQL (initdb in a temp dir)...")
		// PostgreSQL's own default max_connections, which the bench's
		// many-pools scenario runs out of, as apps do.
		cluster, err := pgcluster.Start(pgcluster.Options{User: user, Database: db,
			Settings: map[string]string{"max_connections": "100"}})
		if err != nil {
			fmt.Fprintf(stderr, "pgvalve demo: %v\n(`make run` installs PostgreSQL with apt-get when initdb is missing)\n", err)
			return 1
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				fmt.Fprintf(stderr, "pgvalve demo: stopping PostgreSQL: %v\n", err)
			}
		}()
		cfg.Upstream, password = cluster.UserURL(), cluster.Password
		direct = cluster.URL(user, password, db)
		fmt.Fprintf(stderr, "pgvalve demo: PostgreSQL %s is on 127.0.0.1:%d (data in %s)\n", cluster.Database, cluster.Port, cluster.DataDir)
	} else if u, err := url.Parse(cfg.Upstream); err == nil {
		if u.User != nil && u.User.Username() != "" {
			user = u.User.Username()
			password, _ = u.User.Password()
		}
		if p := u.Path; len(p) > 1 {
			db = p[1:]
		}
	}
	var sec secure
	if secured {
		dir, err := os.MkdirTemp("", "pgvalve-demo-")
		if err == nil {
			defer os.RemoveAll(dir)
			sec, err = secureDemo(&cfg, dir, user, password)
		}
		if err != nil {
			fmt.Fprintf(stderr, "pgvalve demo: %v\n", err)
			return 1
		}
	}
	ready := func() {
		port := portOf(cfg.Listen)
		if secured {
			fmt.Fprintf(stdout, "pgvalve is up, with TLS and SCRAM. Connect with:\n\n"+
				"  PGPASSWORD='%s' psql \"host=127.0.0.1 port=%s user=%s dbname=%s sslmode=verify-full sslrootcert=%s channel_binding=require\"\n\n"+
				"See inside the pool:\n\n  PGPASSWORD='%s' psql \"host=127.0.0.1 port=%s user=%s dbname=pgbouncer sslmode=require\" -c 'SHOW POOLS'\n  http://%s/  (live page; /metrics for Prometheus)\n\n",
				password, port, user, db, sec.caFile, sec.adminPassword, port, cfg.AdminUsers[0], cfg.MetricsListen)
		} else {
			fmt.Fprintf(stdout, "pgvalve is up. Connect with:\n\n  psql \"host=127.0.0.1 port=%s user=%s dbname=%s\"\n\n"+
				"See inside the pool:\n\n  psql -h 127.0.0.1 -p %s -U %s pgbouncer -c 'SHOW POOLS'\n  http://%s/  (live page; /metrics for Prometheus)\n\n",
				port, user, db, port, cfg.AdminUsers[0], cfg.MetricsListen)
		}
		if cfg.UnixSocketDir != "" {
			fmt.Fprintf(stdout, "Or over the unix socket (no TLS needed there):\n\n  psql -h %s -p %s -U %s %s\n\n", cfg.UnixSocketDir, port, user, db)
		}
		if direct != "" && !secured {
			fmt.Fprintf(stdout, "Measure what it changes for a web app whose instances each open their own pool:\n\n"+
				"  pgvalve bench --setup --scenario many-pools --target 'direct=%s' --target 'pgvalve=postgres://%s@127.0.0.1:%s/%s' \\\n"+
				"    --observe-url '%s' --observe-pid 0 --observe-pid %d --html bench.html --json bench.json\n\n",
				direct, user, port, db, direct, os.Getpid())
			if cfg.PoolMode == config.PoolSession {
				fmt.Fprint(stdout, "  In session pooling each of the app's connections keeps a server until it disconnects;\n"+
					"  for this comparison run the demo in transaction pooling: make run DEMO_FLAGS=\"--pool-mode transaction\"\n\n")
			}
		}
		fmt.Fprintln(stdout, "Ctrl-C stops pgvalve and removes the throwaway PostgreSQL.")
	}
	// The demo's upstream may be a cluster it started, which a file read
	// again would not name: it does not reload.
	srv := &server{cfg: cfg, log: log, level: level, ready: ready}
	if err := srv.serve(); err != nil {
		log.Error("pgvalve stopped", "err", err)
		return 1
	}
	return 0
}
