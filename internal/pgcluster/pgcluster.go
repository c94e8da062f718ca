// Package pgcluster runs a throwaway local PostgreSQL cluster: initdb in a
// temp dir, a free port, stopped and removed on Stop.
//
// A cluster lives in its own temporary directory, listens on a free TCP port
// on 127.0.0.1 and on a private unix socket directory, and gets a
// non-superuser SCRAM login role owning one database. When the calling
// process runs as root, initdb, pg_ctl and postgres run as the "postgres"
// system user. A watchdog removes the cluster if the caller dies without
// calling Stop.
//
// The package serves both `pgvalve demo` and the tests (through
// internal/testutil/pgtest), so it must not import testing.
package pgcluster

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// DefaultUser is the login role a cluster gets when Options.User is empty.
	DefaultUser = "pgvalve_test"
	// DefaultDatabase is the database a cluster gets when Options.Database is
	// empty.
	DefaultDatabase = "pgvalve_test"
)

// Cluster is a running throwaway PostgreSQL.
type Cluster struct {
	Host      string // "127.0.0.1"
	Port      int
	BinDir    string
	DataDir   string
	SocketDir string
	Superuser string // the OS/initdb superuser name ("postgres" when run as root, else current user name)
	User      string // a non-superuser login role with a SCRAM-SHA-256 password (Options.User)
	Password  string // User's random password
	Database  string // a database owned by User (Options.Database)

	root          string              // temp dir holding DataDir, SocketDir and the log
	logFile       string              // server log written by pg_ctl -l
	superPassword string              // Superuser's SCRAM password for TCP logins
	settings      map[string]string   // postgresql.conf settings from Options
	env           []string            // scrubbed environment for child processes
	cred          *syscall.Credential // non-nil when children must drop root privileges

	mu           sync.Mutex
	stopped      bool
	watchdog     *exec.Cmd // cleans up if this process dies without calling Stop
	watchdogPipe *os.File  // closing it tells the watchdog to clean up
}

// Options tune a cluster. The zero value is ready to use.
type Options struct {
	// Settings are extra postgresql.conf settings, e.g. {"max_connections": "200"}.
	// They override the defaults but not the listen address, port or socket
	// directory, which the cluster owns.
	Settings map[string]string
	// User names the non-superuser login role; DefaultUser when empty. It
	// gets a random password, CREATEDB, pg_signal_backend and
	// pg_read_all_stats.
	User string
	// Database names the database owned by User; DefaultDatabase when empty.
	Database string
	// TLS turns ssl on with these files; nil leaves it off.
	TLS *TLS
	// HBA lines go before initdb's own pg_hba.conf rules, so they match
	// first: e.g. "hostssl all app 127.0.0.1/32 cert".
	HBA []string
}

// TLS is a cluster's certificate, PEM.
type TLS struct {
	Cert, Key []byte // the server's certificate and private key
	// CA, when set, is ssl_ca_file: the CA that signs the certificates
	// clients may present (for pg_hba's cert method).
	CA []byte
}

// defaultSettings favour speed over durability: the data is thrown away anyway.
// shared_buffers is kept small because `go test ./...` may run a cluster per
// package at the same time. A function, not a package map, so nothing shared
// can be mutated.
func defaultSettings() map[string]string {
	return map[string]string{
		"fsync":               "off",
		"synchronous_commit":  "off",
		"full_page_writes":    "off",
		"max_connections":     "200",
		"shared_buffers":      "32MB",
		"password_encryption": "scram-sha-256",
	}
}

// startAttempts bounds retries when another process grabs the chosen port
// between FreePort and postgres binding it.
const startAttempts = 2

// pgCtlTimeout is how long pg_ctl waits for start or stop to finish.
const pgCtlTimeout = 60 * time.Second

// Start creates, starts and prepares a new cluster. The caller must Stop it.
func Start(opts Options) (*Cluster, error) {
	binDir, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		Host:     "127.0.0.1",
		BinDir:   binDir,
		User:     cmp.Or(opts.User, DefaultUser),
		Database: cmp.Or(opts.Database, DefaultDatabase),
		settings: maps.Clone(opts.Settings),
		env:      childEnv(os.Environ()),
	}
	if c.Superuser, c.cred, err = serverOwner(); err != nil {
		return nil, err
	}
	if err := c.checkNames(); err != nil {
		return nil, err
	}
	if c.superPassword, err = randomPassword(); err != nil {
		return nil, err
	}
	if c.Password, err = randomPassword(); err != nil {
		return nil, err
	}

	if err := c.makeRoot("pgvalve-pgcluster-"); err != nil {
		return nil, err
	}

	ok := false
	defer func() {
		if !ok {
			_ = c.Stop()
		}
	}()
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}
	if err := c.startWatchdog(); err != nil {
		return nil, err
	}
	if err := c.initdb(); err != nil {
		return nil, err
	}
	if err := c.writeTLS(opts.TLS); err != nil {
		return nil, err
	}
	if err := c.prependHBA(opts.HBA); err != nil {
		return nil, err
	}
	if err := c.startOnFreePort(); err != nil {
		return nil, err
	}
	if err := c.createRoles(); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

// makeRoot makes the temp directory the cluster lives in, and names its
// data directory, socket directory and log there.
func (c *Cluster) makeRoot(prefix string) error {
	// The postgres user must be able to traverse every parent of the data
	// directory; root's TMPDIR may point somewhere it cannot, /tmp never does.
	parent := ""
	if c.cred != nil {
		parent = "/tmp"
	}
	var err error
	if c.root, err = os.MkdirTemp(parent, prefix); err != nil {
		return fmt.Errorf("pgcluster: create temp dir: %w", err)
	}
	c.DataDir = filepath.Join(c.root, "data")
	c.SocketDir = filepath.Join(c.root, "sock")
	c.logFile = filepath.Join(c.root, "server.log")
	return nil
}

// checkNames rejects a User or Database that initdb already created, before
// any time is spent on initdb.
func (c *Cluster) checkNames() error {
	if c.User == c.Superuser {
		return fmt.Errorf("pgcluster: Options.User %q is the superuser's name; pick another", c.User)
	}
	switch c.Database {
	case "postgres", "template0", "template1":
		return fmt.Errorf("pgcluster: Options.Database %q already exists in a new cluster; pick another", c.Database)
	}
	return nil
}

// serverOwner returns the OS user initdb/pg_ctl/postgres run as. They refuse
// to run as root, so root hands them to Debian's "postgres" system user.
func serverOwner() (string, *syscall.Credential, error) {
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return "", nil, fmt.Errorf("pgcluster: look up current user: %w", err)
		}
		return u.Username, nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return "", nil, fmt.Errorf("pgcluster: running as root, but cannot find the postgres system user to run the server as: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return "", nil, fmt.Errorf("pgcluster: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return "", nil, fmt.Errorf("pgcluster: postgres gid %q: %w", u.Gid, err)
	}
	return "postgres", &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (c *Cluster) prepareDirs() error {
	if err := os.Chmod(c.root, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := os.Mkdir(c.SocketDir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if err := c.chown(c.root); err != nil {
		return err
	}
	return c.chown(c.SocketDir)
}

// chown hands a path we created to the server's OS user, if that is not us.
func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// confName is the file, included from postgresql.conf, that holds our settings.
const confName = "pgcluster.conf"

func (c *Cluster) initdb() error {
	// initdb insists on a superuser password when --auth-host needs one.
	pwfile := filepath.Join(c.root, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.superPassword+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer os.Remove(pwfile)
	if err := c.chown(pwfile); err != nil {
		return err
	}
	if _, err := c.run("initdb",
		"-D", c.DataDir,
		"-U", c.Superuser,
		"--pwfile="+pwfile,
		"--auth-local=trust",
		// md5 lets roles stored as md5 log in (tests of md5 servers); a role
		// stored as SCRAM is still asked for SCRAM, as PostgreSQL does.
		"--auth-host=md5",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
		"--no-instructions",
	); err != nil {
		return err
	}
	// Our settings live in their own file so a port change rewrites only it.
	include := []byte("\ninclude '" + confName + "'\n")
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if _, err := f.Write(include); err != nil {
		f.Close()
		return fmt.Errorf("pgcluster: %w", err)
	}
	return f.Close()
}

// writeConf writes confName for c.Port.
func (c *Cluster) writeConf() error {
	merged := defaultSettings()
	maps.Copy(merged, c.settings)
	merged["listen_addresses"] = c.Host
	merged["port"] = strconv.Itoa(c.Port)
	merged["unix_socket_directories"] = c.SocketDir

	keys := slices.Sorted(maps.Keys(merged))
	var b strings.Builder
	b.WriteString("# written by pgcluster\n")
	for _, k := range keys {
		// Quoting every value is valid for any GUC type and keeps paths safe.
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(merged[k], "'", "''"))
	}
	path := filepath.Join(c.DataDir, confName)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.chown(path)
}

func (c *Cluster) startOnFreePort() error {
	for attempt := 1; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			return err
		}
		c.Port = port
		if err := c.writeConf(); err != nil {
			return err
		}
		bindFailed, err := c.startServer()
		if err == nil {
			return nil
		}
		if !bindFailed || attempt >= startAttempts {
			return err
		}
	}
}

// createRoles sets up the SCRAM login role and its database over the unix
// socket, where the superuser is trusted.
func (c *Cluster) createRoles() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	connString := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable",
		quoteConnValue(c.SocketDir), c.Port, quoteConnValue(c.Superuser))
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return fmt.Errorf("pgcluster: connect as superuser over unix socket: %w", err)
	}
	defer conn.Close(context.Background())

	super := pgx.Identifier{c.Superuser}.Sanitize()
	role := pgx.Identifier{c.User}.Sanitize()
	// Separate statements: CREATE DATABASE cannot run in the implicit
	// transaction a multi-statement query string gets.
	stmts := []string{
		"SET password_encryption = 'scram-sha-256'",
		// Re-set the superuser password so it is SCRAM-hashed even on
		// versions whose initdb hashed it with md5.
		"ALTER ROLE " + super + " PASSWORD " + quoteLiteral(c.superPassword),
		"CREATE ROLE " + role + " LOGIN CREATEDB PASSWORD " + quoteLiteral(c.Password),
		// Lets the role watch and cancel/terminate other roles' backends,
		// e.g. the pooler's server connections.
		"GRANT pg_signal_backend, pg_read_all_stats TO " + role,
		"CREATE DATABASE " + pgx.Identifier{c.Database}.Sanitize() + " OWNER " + role,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("pgcluster: setup %q: %w", strings.SplitN(s, " PASSWORD ", 2)[0], err)
		}
	}
	return nil
}

// randomPassword returns a hex password, safe in URLs, conninfo and SQL.
func randomPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgcluster: random password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func quoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
