package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// bouncerConfig is a pgbouncer.ini in the shape the bench script writes
// for PgBouncer, in front of the test cluster, with the given pool size;
// default_pool_size is on line 9.
func bouncerConfig(poolSize int) string {
	return fmt.Sprintf(`[databases]
bench = host=127.0.0.1 port=%d dbname=%s user=%s password='%s'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 0
unix_socket_dir =
pool_mode = transaction
default_pool_size = %d
max_client_conn = 100
query_wait_timeout = 5
admin_users = admin
log_connections = 0
logfile = /var/log/pgbouncer/pgbouncer.log
`, cluster.Port, pgtest.TestDatabase, cluster.User, cluster.Password, poolSize)
}

// pgvalve run --config pgbouncer.ini serves the file's databases as
// PgBouncer would, says once which keys it ignored, and reloads it.
func TestPgvalveRunsAPgBouncerFileAndReloadsIt(t *testing.T) {
	path := writeFile(t, bouncerConfig(2))
	c := startChild(t, "--config", path)
	for _, want := range []string{":13: log_connections: ignored", ":14: logfile: ignored"} {
		if strings.Count(c.log.String(), want) != 1 {
			t.Errorf("the log does not say once %q:\n%s", want, c.log)
		}
	}
	ctx := testutil.Context(t)
	client := connect(t, c.url("bench"), nil)
	var db string
	if err := client.QueryRow(ctx, "select current_database()").Scan(&db); err != nil || db != pgtest.TestDatabase {
		t.Fatalf("through the route bench: %q, %v; want %s", db, err, pgtest.TestDatabase)
	}
	console := connect(t, fmt.Sprintf("postgres://admin@127.0.0.1:%s/pgbouncer?sslmode=disable", c.port), nil)
	pools := func() (mode string, size int) {
		t.Helper()
		rows, err := console.Query(ctx, "SHOW DATABASES", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			row := map[string]any{}
			for i, f := range rows.FieldDescriptions() {
				row[f.Name] = vals[i]
			}
			if row["name"] == "bench" {
				mode, size = fmt.Sprint(row["pool_mode"]), toInt(row["pool_size"])
			}
		}
		return mode, size
	}
	if mode, size := pools(); mode != "transaction" || size != 2 {
		t.Fatalf("SHOW DATABASES: bench in %q pooling of %d; want transaction, 2", mode, size)
	}
	rewrite(t, path, bouncerConfig(3))
	mark := c.signal(t, syscall.SIGHUP)
	c.waitLog(t, mark, "pool_size: 2 → 3")
	if mode, size := pools(); mode != "transaction" || size != 3 {
		t.Fatalf("after the reload: bench in %q pooling of %d; want transaction, 3", mode, size)
	}
	exec1(t, client, "the client connected before the reload")
	c.alive(t)
}

func toInt(v any) int {
	switch n := v.(type) {
	case int32:
		return int(n)
	case int64:
		return int(n)
	}
	return -1
}

func TestCheckConfigAndConvertReadAPgBouncerFile(t *testing.T) {
	path := writeFile(t, bouncerConfig(2))
	var out, errs strings.Builder
	if rc := realMain([]string{"check-config", "--config", path}, &out, &errs); rc != 0 || !strings.Contains(errs.String(), "logfile: ignored") {
		t.Fatalf("check-config: %d, %q, %q; want ok with the ignored keys listed", rc, out.String(), errs.String())
	}
	out.Reset()
	if rc := realMain([]string{"convert", path}, &out, &errs); rc != 0 {
		t.Fatalf("convert: %d, %s", rc, errs.String())
	}
	for _, want := range []string{`pool_mode = "transaction"`, "pool_size = 2", `[databases."bench"]`, `listen = "127.0.0.1:0"`, "# " + path + ":14: logfile: ignored"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("convert's TOML lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(out.String(), cluster.Password) {
		t.Errorf("convert dropped the route's password:\n%s", out.String())
	}
	bad := writeFile(t, "[pgbouncer]\nauth_type = pam\n")
	errs.Reset()
	if rc := realMain([]string{"convert", bad}, &out, &errs); rc != 1 || !strings.Contains(errs.String(), bad+":2: auth_type") {
		t.Fatalf("convert of a file it cannot honour: %d, %q; want 1 and the line", rc, errs.String())
	}
}
