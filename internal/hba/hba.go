// Package hba reads auth_hba_file, PostgreSQL's pg_hba.conf format, and
// picks the authentication method for a client: the first line that
// matches its connection type, database, user and address wins, and a
// client no line matches is refused.
//
// The subset supported is PgBouncer's, a little stricter: what pgvalve
// cannot honour is refused when the file loads, with its line, never
// ignored, because skipping a line (say "+admins ... reject") could let a
// later, looser line admit the client it was meant to stop.
package hba

import (
	"net/netip"
	"os"
)

// ConnType is a line's first field.
type ConnType uint8

// Connection types. hostgssenc never matches (pgvalve declines GSS
// encryption) and hostnogssenc matches every TCP client, as in PostgreSQL.
const (
	Local ConnType = iota + 1
	Host
	HostSSL
	HostNoSSL
	HostGSSEnc
	HostNoGSSEnc
)

var connTypes = map[string]ConnType{
	"local": Local, "host": Host, "hostssl": HostSSL, "hostnossl": HostNoSSL,
	"hostgssenc": HostGSSEnc, "hostnogssenc": HostNoGSSEnc,
}

// Method is a line's authentication method, named as in pg_hba.conf.
type Method string

// The methods pgvalve runs.
const (
	Trust    Method = "trust"
	Reject   Method = "reject"
	MD5      Method = "md5"
	SCRAM    Method = "scram-sha-256"
	Password Method = "password"
	Cert     Method = "cert"
	Peer     Method = "peer"
)

// NeedsSecret says whether m checks a password against stored secrets
// (auth_file).
func (m Method) NeedsSecret() bool { return m == MD5 || m == SCRAM || m == Password }

// ClientCert is a hostssl line's clientcert option.
type ClientCert uint8

// clientcert values: none asks for nothing beyond the method; verify-ca
// wants a certificate the CA signs; verify-full also wants its common
// name to be the user.
const (
	CertNone ClientCert = iota
	CertVerifyCA
	CertVerifyFull
)

// Rule is one line of the file.
type Rule struct {
	Line       int // first physical line of the record
	Type       ConnType
	Databases  []name
	Users      []name
	Addr       addr // host lines only
	Method     Method
	ClientCert ClientCert
}

// name is a database or user field item: a keyword (all, sameuser,
// replication), unless it was quoted, or a name.
type name struct {
	text    string
	keyword bool
}

// addr is a host line's address: every address, or a prefix.
type addr struct {
	all    bool
	prefix netip.Prefix
}

// Rules is a loaded file; immutable.
type Rules struct {
	File  string
	rules []Rule
}

// Rules lists the lines in file order.
func (rs *Rules) Rules() []Rule { return rs.rules }

// Client is what a rule is matched against.
type Client struct {
	Local          bool // on the unix socket
	TLS            bool
	Database, User string
	Addr           netip.Addr // TCP clients only
}

// Match returns the first rule that matches c; false when none does,
// which means c is refused.
func (rs *Rules) Match(c Client) (Rule, bool) {
	if rs == nil {
		return Rule{}, false
	}
	c.Addr = c.Addr.Unmap() // an IPv4 client on a dual-stack socket is an IPv4 client
	for _, r := range rs.rules {
		if r.matches(c) {
			return r, true
		}
	}
	return Rule{}, false
}

func (r Rule) matches(c Client) bool {
	if !r.typeMatches(c) {
		return false
	}
	if r.Type != Local && !r.Addr.all && !r.Addr.prefix.Contains(c.Addr) {
		return false
	}
	return anyName(r.Databases, func(n name) bool {
		switch {
		case !n.keyword:
			return n.text == c.Database
		case n.text == "all":
			return true
		case n.text == "sameuser":
			return c.Database == c.User
		}
		return false // replication: pgvalve refuses replication connections before auth
	}) && anyName(r.Users, func(n name) bool {
		return (n.keyword && n.text == "all") || (!n.keyword && n.text == c.User)
	})
}

func (r Rule) typeMatches(c Client) bool {
	switch r.Type {
	case Local:
		return c.Local
	case Host, HostNoGSSEnc:
		return !c.Local
	case HostSSL:
		return !c.Local && c.TLS
	case HostNoSSL:
		return !c.Local && !c.TLS
	}
	return false
}

func anyName(names []name, f func(name) bool) bool {
	for _, n := range names {
		if f(n) {
			return true
		}
	}
	return false
}

// maxFile bounds the file read, far past any real pg_hba.conf.
const maxFile = 16 << 20

// Load reads and parses the file at path.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) > maxFile {
		return nil, &os.PathError{Op: "read", Path: path, Err: errTooBig}
	}
	return Parse(path, data)
}
