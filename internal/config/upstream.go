package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Upstream is a parsed postgres URL.
type Upstream struct {
	Host     string            // required; IPv6 without brackets
	Port     int               // default 5432
	User     string            // "" if absent
	Password string            // "" if absent
	Database string            // "" if absent (the path)
	Params   map[string]string // query parameters such as sslmode, kept as given; nil if none
}

// DefaultPort is the port of an upstream URL that names none.
const DefaultPort = 5432

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
	host := u.Hostname()
	if host == "" {
		return Upstream{}, errors.New("missing host")
	}
	if strings.Contains(u.Host, ",") {
		return Upstream{}, errors.New("multiple hosts are not supported")
	}
	out := Upstream{Host: host, Port: DefaultPort}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Upstream{}, fmt.Errorf("invalid port %q", p)
		}
		out.Port = n
	}
	if u.User != nil {
		out.User = u.User.Username()
		out.Password, _ = u.User.Password()
	}
	out.Database = strings.TrimPrefix(u.Path, "/")
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return Upstream{}, fmt.Errorf("invalid query: %v", err)
		}
		out.Params = make(map[string]string, len(q))
		for k, vs := range q {
			if len(vs) > 1 {
				return Upstream{}, fmt.Errorf("parameter %q given more than once", k)
			}
			out.Params[k] = vs[0]
		}
	}
	return out, nil
}
