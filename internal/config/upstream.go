package config

import (
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
)

// Upstream is a parsed postgres URL.
type Upstream struct {
	// Hosts are the URL's hosts, at least one, in order: libpq's
	// multi-host form "h1:5432,h2:5433".
	Hosts    []Address
	User     string // "" if absent
	Password string // "" if absent
	Database string // "" if absent (the path)
	// TargetSessionAttrs and LoadBalanceHosts are the URL's own
	// target_session_attrs and load_balance_hosts, "" if absent; pgvalve
	// reads them itself, so Params leaves them out.
	TargetSessionAttrs string
	LoadBalanceHosts   string
	Params             map[string]string // other query parameters such as sslmode, kept as given; nil if none
}

// Address is one host of an upstream.
type Address struct {
	Host string // required; IPv6 without brackets
	Port int    // default 5432
	// Weight is its share of the leases against the route's other hosts
	// (a route's host list); 0 counts as 1.
	Weight int
}

// String is the address as host:port, IPv6 in brackets.
func (a Address) String() string {
	if strings.Contains(a.Host, ":") {
		return "[" + a.Host + "]:" + strconv.Itoa(a.Port)
	}
	return a.Host + ":" + strconv.Itoa(a.Port)
}

// DefaultPort is the port of an upstream URL that names none.
const DefaultPort = 5432

// MaxHosts bounds the hosts of one route.
const MaxHosts = 64

// TargetSessionAttrs are the values of target_session_attrs, as libpq's.
var TargetSessionAttrs = []string{"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}

// LoadBalanceHosts are the values of load_balance_hosts: pgvalve's
// least-busy (the default), PgBouncer's round-robin, libpq's random and
// disable (the hosts in their order, the first usable one serving).
var LoadBalanceHosts = []string{"least-busy", "round-robin", "random", "disable"}

// ParseUpstream parses a postgres:// or postgresql:// URL, percent-decoding
// its parts. Errors start with "upstream: " and never repeat the URL, which
// may hold a password.
func ParseUpstream(s string) (Upstream, error) {
	u, err := parseUpstream(s)
	if err != nil {
		return Upstream{}, fmt.Errorf("upstream: %w", err)
	}
	return u, nil
}

// parseUpstream is ParseUpstream without the "upstream: " prefix, for
// messages that already name the key.
func parseUpstream(s string) (Upstream, error) {
	if s == "" {
		return Upstream{}, errors.New("empty URL")
	}
	// net/url reads one host; the others of a multi-host URL are cut out
	// here and parsed one by one.
	s, rest := splitHosts(s)
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error quotes the whole URL, password included
		}
		return Upstream{}, fmt.Errorf("invalid URL: %v", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		if u.Scheme == "" {
			return Upstream{}, errors.New("URL must start with postgres:// or postgresql://")
		}
		return Upstream{}, fmt.Errorf("unsupported scheme %q (want postgres or postgresql)", u.Scheme)
	}
	if u.Opaque != "" {
		return Upstream{}, fmt.Errorf("URL must start with %s://", u.Scheme)
	}
	if u.Fragment != "" {
		return Upstream{}, errors.New("unexpected #fragment")
	}
	first, err := urlAddress(u)
	if err != nil {
		return Upstream{}, err
	}
	out := Upstream{Hosts: []Address{first}}
	for _, h := range rest {
		a, err := ParseAddress(h)
		if err != nil {
			return Upstream{}, err
		}
		out.Hosts = append(out.Hosts, a)
	}
	if len(out.Hosts) > MaxHosts {
		return Upstream{}, fmt.Errorf("%d hosts; at most %d", len(out.Hosts), MaxHosts)
	}
	if u.User != nil {
		out.User = u.User.Username()
		out.Password, _ = u.User.Password()
	}
	out.Database = strings.TrimPrefix(u.Path, "/")
	if u.RawQuery != "" {
		if err := out.readQuery(u.RawQuery); err != nil {
			return Upstream{}, err
		}
	}
	return out, nil
}

// splitHosts cuts the hosts after the first out of a multi-host URL's
// authority: "postgres://u@h1:1,h2:2/db" is "postgres://u@h1:1/db" and
// ["h2:2"].
func splitHosts(s string) (string, []string) {
	start, end := hostSpan(s)
	hosts := strings.Split(s[start:end], ",")
	if len(hosts) == 1 {
		return s, nil
	}
	return s[:start] + hosts[0] + s[end:], hosts[1:]
}

// hostSpan is where a URL's hosts are: after "://" and any user info, up
// to the path, query or fragment.
func hostSpan(s string) (start, end int) {
	i := strings.Index(s, "://")
	if i < 0 {
		return 0, 0
	}
	start, end = i+3, len(s)
	if j := strings.IndexAny(s[start:], "/?#"); j >= 0 {
		end = start + j
	}
	return start + strings.LastIndex(s[start:end], "@") + 1, end
}

// JoinUpstreams makes one multi-host URL of URLs that differ only in their
// hosts, as --upstream given several times.
func JoinUpstreams(urls []string) (string, error) {
	if len(urls) < 2 {
		return strings.Join(urls, ""), nil
	}
	first, err := ParseUpstream(urls[0])
	if err != nil {
		return "", err
	}
	var hosts []string
	for _, u := range urls {
		up, err := ParseUpstream(u)
		if err != nil {
			return "", err
		}
		for _, h := range up.Hosts {
			hosts = append(hosts, h.String())
		}
		up.Hosts = first.Hosts
		if !reflect.DeepEqual(up, first) {
			return "", errors.New("upstream: URLs given together may differ only in their hosts")
		}
	}
	start, end := hostSpan(urls[0])
	return urls[0][:start] + strings.Join(hosts, ",") + urls[0][end:], nil
}

// urlAddress is the one host net/url found.
func urlAddress(u *url.URL) (Address, error) {
	host := u.Hostname()
	if host == "" {
		return Address{}, errors.New("missing host")
	}
	out := Address{Host: host, Port: DefaultPort}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Address{}, fmt.Errorf("invalid port %q", p)
		}
		out.Port = n
	}
	return out, nil
}

// ParseAddress parses one host as "host", "host:port", "[v6]" or
// "[v6]:port", percent-decoded as in a URL.
func ParseAddress(s string) (Address, error) {
	u, err := url.Parse("postgres://" + s)
	if err != nil || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return Address{}, fmt.Errorf("invalid host %q", s)
	}
	return urlAddress(u)
}

// readQuery takes the URL's parameters: the two pgvalve reads itself,
// checked, and the rest for the server's login.
func (out *Upstream) readQuery(raw string) error {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return fmt.Errorf("invalid query: %v", err)
	}
	for k, vs := range q {
		if len(vs) > 1 {
			return fmt.Errorf("parameter %q given more than once", k)
		}
		switch v := vs[0]; k {
		case "target_session_attrs":
			if err := oneOf(k, v, TargetSessionAttrs); err != nil {
				return err
			}
			out.TargetSessionAttrs = v
		case "load_balance_hosts":
			if err := oneOf(k, v, LoadBalanceHosts); err != nil {
				return err
			}
			out.LoadBalanceHosts = v
		default:
			if out.Params == nil {
				out.Params = make(map[string]string, len(q))
			}
			out.Params[k] = v
		}
	}
	return nil
}

// oneOf checks that key's value v is one of values.
func oneOf(key, v string, values []string) error {
	for _, ok := range values {
		if v == ok {
			return nil
		}
	}
	return fmt.Errorf("%s %q: want one of %s", key, v, strings.Join(values, ", "))
}
