package pgcluster

import (
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
)

// URL returns a TCP connection URL for user on database.
func (c *Cluster) URL(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	if password == "" {
		u.User = url.User(user)
	}
	return u.String()
}

// UserURL returns a TCP URL for User on Database, authenticating with SCRAM.
func (c *Cluster) UserURL() string {
	return c.URL(c.User, c.Password, c.Database)
}

// SuperuserURL returns a TCP URL for the superuser, authenticating with SCRAM.
func (c *Cluster) SuperuserURL(database string) string {
	return c.URL(c.Superuser, c.superPassword, database)
}

// SuperuserPassword is the superuser's password for TCP logins.
func (c *Cluster) SuperuserPassword() string { return c.superPassword }

// LogFile is the server log; it is removed by Stop.
func (c *Cluster) LogFile() string { return c.logFile }

// Psql returns the path of psql.
func (c *Cluster) Psql() string { return c.tool("psql") }

// PgBench returns the path of pgbench.
func (c *Cluster) PgBench() string { return c.tool("pgbench") }

// tool prefers the server's own BinDir so client and server versions match.
func (c *Cluster) tool(name string) string {
	p := filepath.Join(c.BinDir, name)
	if isExecutable(p) {
		return p
	}
	if lp, err := exec.LookPath(name); err == nil {
		return lp
	}
	return p
}
