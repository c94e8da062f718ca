package console

// hosts is SHOW HOSTS, pgvalve's own: one row per host of every pool.
func (s *session) hosts() table {
	t := table{cols: []column{
		text("database"), text("user"), text("host"), text("state"), text("role"), numeric("lag_ms"), int4("weight"),
		int4("outstanding"), int4("idle"), int4("connecting"), int8("chosen"), text("last_error"),
	}}
	for _, h := range s.b.Hosts() {
		var lag any
		if h.LagKnown {
			lag = ms(h.Lag)
		}
		t.add(h.Database, h.User, h.Host, h.State, nullIfEmpty(h.Role), lag, h.Weight,
			h.Outstanding, h.Idle, h.Connecting, h.Chosen, nullIfEmpty(h.LastError))
	}
	return t
}
