package hba

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

var errTooBig = errors.New("file too large")

// token is one item of a field; quoted says some of it was in double
// quotes, which takes a keyword's meaning away ("all" is a database).
type token struct {
	text   string
	quoted bool
}

// field is a whitespace-separated field: one token, or a comma list.
type field []token

// Parse reads data in pg_hba.conf format. Every problem is reported,
// each as "name:line: ...", joined.
func Parse(name string, data []byte) (*Rules, error) {
	rs := &Rules{File: name}
	var errs []error
	for _, rec := range records(string(data)) {
		fields, err := tokenize(rec.text)
		if err == nil && len(fields) > 0 {
			var r Rule
			r, err = parseRule(fields)
			r.Line = rec.line
			rs.rules = append(rs.rules, r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, rec.line, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// record is a logical line: physical lines joined where one ends with a
// backslash (PostgreSQL 16's continuation), numbered by its first.
type record struct {
	line int
	text string
}

func records(data string) []record {
	var out []record
	var cur strings.Builder
	start := 0
	lines := strings.Split(data, "\n")
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(l, `\`); ok && i < len(lines)-1 {
			cur.WriteString(cont)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(l)
		out = append(out, record{line: start, text: cur.String()})
		cur.Reset()
	}
	return out
}

// tokenize splits a record into fields. Whitespace separates fields; a
// comma continues the field, even across whitespace, as in PostgreSQL;
// '#' outside quotes starts a comment.
func tokenize(s string) ([]field, error) {
	var fields []field
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) || s[i] == '#' {
			return fields, nil
		}
		var f field
		for {
			t, n, err := readToken(s[i:])
			if err != nil {
				return nil, err
			}
			i += n
			if t.text == "" && !t.quoted {
				return nil, errors.New("empty item in a comma-separated list")
			}
			f = append(f, t)
			if i < len(s) && s[i] == ',' {
				i++
				skipSpace()
				continue
			}
			break
		}
		fields = append(fields, f)
	}
}

// readToken reads one token from the start of s and says how many bytes
// it took; it stops at whitespace, a comma or a comment outside quotes.
func readToken(s string) (token, int, error) {
	var b strings.Builder
	var t token
	in := false
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !in && (isSpace(c) || c == ',' || c == '#') {
			break
		}
		if c == '"' {
			in, t.quoted = !in, true
			continue
		}
		b.WriteByte(c)
	}
	if in {
		return t, i, errors.New("unterminated quoted string")
	}
	t.text = b.String()
	return t, i, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }

func (f field) keyword(k string) bool { return len(f) == 1 && !f[0].quoted && f[0].text == k }

// single is a field that must be one unquoted word (connection type,
// method, address).
func (f field) single(what string) (string, error) {
	if len(f) != 1 {
		return "", fmt.Errorf("%s must be a single word, not a list", what)
	}
	return f[0].text, nil
}

// parseRule reads one record's fields.
func parseRule(fields []field) (Rule, error) {
	var r Rule
	typ, err := fields[0].single("the connection type")
	if err != nil {
		return r, err
	}
	if strings.HasPrefix(typ, "include") {
		return r, fmt.Errorf("%q directives are not supported; put every line in auth_hba_file", typ)
	}
	ct, ok := connTypes[typ]
	if !ok {
		return r, fmt.Errorf("invalid connection type %q (want local, host, hostssl, hostnossl, hostgssenc or hostnogssenc)", typ)
	}
	r.Type = ct
	rest := fields[1:]
	if len(rest) < 2 {
		return r, errors.New("end of line before the user field")
	}
	if r.Databases, err = names(rest[0], "database", []string{"all", "sameuser", "replication"}); err != nil {
		return r, err
	}
	if r.Users, err = names(rest[1], "user", []string{"all"}); err != nil {
		return r, err
	}
	rest = rest[2:]
	if ct != Local {
		if r.Addr, rest, err = address(rest); err != nil {
			return r, err
		}
	}
	if len(rest) == 0 {
		return r, errors.New("end of line before the authentication method")
	}
	if r.Method, err = method(rest[0]); err != nil {
		return r, err
	}
	if err := r.options(rest[1:]); err != nil {
		return r, err
	}
	return r, r.check()
}

// names reads a database or user field. Forms pgvalve cannot resolve are
// refused: @file includes, /regular expressions, +group membership and
// samerole (roles live in PostgreSQL, which pgvalve does not ask).
func names(f field, what string, keywords []string) ([]name, error) {
	out := make([]name, 0, len(f))
	for _, t := range f {
		n := name{text: t.text}
		if !t.quoted {
			switch {
			case strings.HasPrefix(t.text, "@"):
				return nil, fmt.Errorf("%s %q: @file inclusion is not supported; list the names", what, t.text)
			case strings.HasPrefix(t.text, "/"):
				return nil, fmt.Errorf("%s %q: regular expressions are not supported", what, t.text)
			case what == "user" && strings.HasPrefix(t.text, "+"):
				return nil, fmt.Errorf("user %q: +group membership is not supported (pgvalve cannot look up roles); list the users", t.text)
			case what == "database" && (t.text == "samerole" || t.text == "samegroup"):
				return nil, fmt.Errorf("database %q is not supported (pgvalve cannot look up roles)", t.text)
			}
			for _, k := range keywords {
				n.keyword = n.keyword || t.text == k
			}
		}
		if n.text == "" {
			return nil, fmt.Errorf("empty %s name", what)
		}
		out = append(out, n)
	}
	return out, nil
}

// address reads a host line's address: all, a CIDR prefix, or an
// address and a netmask (two fields). It returns the fields left.
func address(fields []field) (addr, []field, error) {
	if len(fields) == 0 {
		return addr{}, nil, errors.New("end of line before the address")
	}
	s, err := fields[0].single("the address")
	if err != nil {
		return addr{}, nil, err
	}
	switch {
	case fields[0].keyword("all"):
		return addr{all: true}, fields[1:], nil
	case fields[0].keyword("samehost"), fields[0].keyword("samenet"):
		return addr{}, nil, fmt.Errorf("address %q is not supported; write the addresses", s)
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return addr{}, nil, fmt.Errorf("invalid IP address/prefix %q", s)
		}
		return addr{prefix: p.Masked()}, fields[1:], nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return addr{}, nil, fmt.Errorf("invalid IP address %q (host names are not supported)", s)
	}
	if len(fields) < 2 {
		return addr{}, nil, fmt.Errorf("IP address %q needs a /prefix or a netmask", s)
	}
	m, err := fields[1].single("the netmask")
	mask, merr := netip.ParseAddr(m)
	if err != nil || merr != nil || mask.Is4() != ip.Is4() {
		return addr{}, nil, fmt.Errorf("invalid netmask %q for %q", m, s)
	}
	ones, bits := net.IPMask(mask.AsSlice()).Size()
	if bits == 0 {
		return addr{}, nil, fmt.Errorf("netmask %q is not a contiguous mask", m)
	}
	return addr{prefix: netip.PrefixFrom(ip, ones).Masked()}, fields[2:], nil
}

// unsupported are pg_hba.conf's methods pgvalve does not run (nor does
// PgBouncer in an hba file).
var unsupported = []string{"ident", "gss", "sspi", "ldap", "radius", "pam", "bsd", "oauth", "any", "plain"}

func method(f field) (Method, error) {
	s, err := f.single("the authentication method")
	if err != nil {
		return "", err
	}
	switch m := Method(s); m {
	case Trust, Reject, MD5, SCRAM, Password, Cert, Peer:
		return m, nil
	}
	for _, u := range unsupported {
		if s == u {
			return "", fmt.Errorf("authentication method %q is not supported (pgvalve runs trust, reject, md5, scram-sha-256, password, cert, peer)", s)
		}
	}
	return "", fmt.Errorf("invalid authentication method %q", s)
}

// options reads name=value options; only clientcert means anything to
// pgvalve, and every other is refused rather than ignored.
func (r *Rule) options(fields []field) error {
	for _, f := range fields {
		for _, t := range f {
			k, v, ok := strings.Cut(t.text, "=")
			if !ok {
				return fmt.Errorf("authentication option %q is not in name=value form", t.text)
			}
			switch {
			case k == "clientcert" && v == "verify-ca":
				r.ClientCert = CertVerifyCA
			case k == "clientcert" && v == "verify-full":
				r.ClientCert = CertVerifyFull
			case k == "clientcert":
				return fmt.Errorf("invalid value for clientcert: %q (want verify-ca or verify-full)", v)
			case k == "map":
				return errors.New("user name maps (map=) are not supported")
			default:
				return fmt.Errorf("authentication option %q is not supported", k)
			}
		}
	}
	return nil
}

// check refuses what PostgreSQL refuses, and cleartext passwords on a
// line that can match a client without TLS over the network.
func (r Rule) check() error {
	switch {
	case r.Method == Peer && r.Type != Local:
		return errors.New("peer authentication is only supported on local sockets")
	case r.Method == Cert && r.Type != HostSSL:
		return errors.New("cert authentication is only supported on hostssl connections")
	case r.ClientCert != CertNone && r.Type != HostSSL:
		return errors.New(`clientcert can only be configured for "hostssl" rows`)
	case r.Method == Cert && r.ClientCert == CertVerifyCA:
		return errors.New(`clientcert only accepts "verify-full" when using "cert" authentication`)
	case r.Method == Password && r.Type != Local && r.Type != HostSSL:
		return errors.New("password sends the password in cleartext: use it on hostssl or local lines only")
	}
	return nil
}
