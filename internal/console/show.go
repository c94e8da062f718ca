package console

import (
	"net"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/observe"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// statsPeriod is the window of SHOW STATS' averages: the views' "last
// minute", PgBouncer's default stats_period.
const statsPeriod = 60 // seconds

// shows maps SHOW's subjects to their answers.
var shows = map[string]func(*session) table{
	"pools":          (*session).pools,
	"stats":          (*session).stats,
	"stats_totals":   (*session).statsTotals,
	"stats_averages": (*session).statsAverages,
	"totals":         (*session).totals,
	"clients":        (*session).clients,
	"servers":        (*session).servers,
	"databases":      (*session).databases,
	"users":          (*session).users,
	"config":         (*session).config,
	"lists":          (*session).lists,
	"peers":          (*session).peers,
	"state":          (*session).state,
	"version":        (*session).version,
	"holders":        (*session).holders,
	"latency":        (*session).latency,
	"diagnosis":      (*session).diagnosis,
	"hosts":          (*session).hosts,
}

// show answers SHOW subject.
func (s *session) show(c command, q string) {
	subject := asciiLower(c.Arg)
	if v, ok := fakeParam(subject); ok {
		t := table{cols: []column{text(subject)}}
		t.add(v)
		s.send(t)
		return
	}
	if subject == "help" {
		s.help()
		return
	}
	f, ok := shows[subject]
	if !ok {
		s.invalid(q)
		return
	}
	s.send(f(s))
}

// help answers SHOW HELP with a notice listing the commands, as PgBouncer
// does.
func (s *session) help() {
	const usage = "\n" +
		"\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n" +
		"\tSHOW LISTS|PEERS|STATE\n" +
		"\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n" +
		"\tSHOW HOLDERS|LATENCY|DIAGNOSIS|HOSTS (pgvalve's own)\n" +
		"\tRELOAD\n" +
		"\tPAUSE [<db>]\n" +
		"\tRESUME [<db>]\n" +
		"\tRECONNECT [<db>]\n" +
		"\tKILL [<db>]\n" +
		"\tKILL_CLIENT <client_id>\n" +
		"\tSHUTDOWN\n" +
		"\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n" +
		"\tWAIT_CLOSE [<db>]"
	s.out = wire.Append(s.out, &pgproto3.NoticeResponse{
		Severity: wire.SeverityNotice, SeverityUnlocalized: wire.SeverityNotice,
		Code: codeNotice, Message: "Console usage", Detail: usage,
	})
	s.complete("SHOW")
}

// pools is SHOW POOLS: PgBouncer's columns; pgvalve has no cancel-request
// lists nor tested servers, so those columns are 0.
func (s *session) pools() table {
	t := table{cols: []column{
		text("database"), text("user"),
		int4("cl_active"), int4("cl_waiting"), int4("cl_active_cancel_req"), int4("cl_waiting_cancel_req"),
		int4("sv_active"), int4("sv_active_cancel"), int4("sv_being_canceled"),
		int4("sv_idle"), int4("sv_used"), int4("sv_tested"), int4("sv_login"),
		int4("maxwait"), int4("maxwait_us"), text("pool_mode"), text("load_balance_hosts"),
	}}
	for _, p := range s.b.Pools() {
		t.add(p.Database, p.User,
			p.ClientsActive, p.ClientsWaiting, 0, 0,
			p.ServersActive, 0, 0,
			p.ServersIdle, p.ServersUsed, 0, p.ServersLogin,
			int(p.MaxWait/time.Second), int((p.MaxWait%time.Second)/time.Microsecond), p.Mode, nil)
	}
	return t
}

// dbStats is one database's pools summed.
type dbStats struct {
	name string
	observe.Pool
}

// perDatabase sums the pools of each database, in the order databases
// first appear.
func perDatabase(pools []observe.Pool) []dbStats {
	var out []dbStats
	index := make(map[string]int)
	for _, p := range pools {
		i, ok := index[p.Database]
		if !ok {
			i = len(out)
			index[p.Database] = i
			out = append(out, dbStats{name: p.Database})
		}
		addPool(&out[i].Pool, p)
	}
	return out
}

// addPool adds p's counters to sum.
func addPool(sum *observe.Pool, p observe.Pool) {
	sum.Acquires += p.Acquires
	sum.Xacts += p.Xacts
	sum.Queries += p.Queries
	sum.BytesReceived += p.BytesReceived
	sum.BytesSent += p.BytesSent
	sum.WaitTime += p.WaitTime
	sum.QueryTime += p.QueryTime
	sum.XactTime += p.XactTime
	sum.ReceivedLastMinute += p.ReceivedLastMinute
	sum.SentLastMinute += p.SentLastMinute
	for k := range observe.NumKinds {
		sum.LatencyNow[k].Count += p.LatencyNow[k].Count
		sum.LatencyNow[k].Sum += p.LatencyNow[k].Sum
	}
}

// totals are PgBouncer's twelve counters since start. pgvalve does not
// count parses, binds or logins per pool yet: those are 0.
func totals(p observe.Pool) []any {
	return []any{
		p.Acquires, p.Xacts, p.Queries, p.BytesReceived, p.BytesSent,
		usec(p.XactTime), usec(p.QueryTime), usec(p.WaitTime),
		0, 0, 0, 0,
	}
}

// averages are the same twelve over the last minute: counts and bytes per
// second, times per transaction, query and server assignment in µs.
func averages(p observe.Pool) []any {
	perSec := func(n int64) int64 { return n / statsPeriod }
	mean := func(s observe.Summary) int64 {
		if s.Count == 0 {
			return 0
		}
		return usec(s.Sum) / int64(s.Count)
	}
	wait, xact, query := p.LatencyNow[observe.Wait], p.LatencyNow[observe.Xact], p.LatencyNow[observe.Query]
	return []any{
		perSec(int64(wait.Count)), perSec(int64(xact.Count)), perSec(int64(query.Count)),
		perSec(p.ReceivedLastMinute), perSec(p.SentLastMinute),
		mean(xact), mean(query), mean(wait),
		0, 0, 0, 0,
	}
}

var (
	totalNames = []string{"server_assignment_count", "xact_count", "query_count", "received", "sent",
		"xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count", "client_login_count"}
	avgNames = []string{"server_assignment_count", "xact_count", "query_count", "recv", "sent",
		"xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count", "client_login_count"}
	statsTotalsNames = []string{"server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
		"xact_time", "query_time", "wait_time", "client_parse_count", "server_parse_count", "bind_count", "client_login_count"}
	statsAveragesNames = []string{"server_assignment_count", "xact_count", "query_count", "bytes_received", "bytes_sent",
		"xact_time", "query_time", "wait_time", "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count", "avg_client_login_count"}
	// totalsNames are SHOW TOTALS' row names after "total_" and "avg_".
	totalsNames = []string{"server_assignment_count", "xact_count", "query_count", "client_bytes", "server_bytes",
		"xact_time", "query_time", "wait_time", "ps_client_parse_count", "ps_server_parse_count", "ps_bind_count", "client_login_count"}
)

func numericCols(prefix string, names []string) []column {
	cols := make([]column, len(names))
	for i, n := range names {
		cols[i] = numeric(prefix + n)
	}
	return cols
}

// stats is SHOW STATS: per database, totals then last-minute averages.
// stats is SHOW STATS with one more column at the end, total_requests:
// PgBouncer before 1.8 named total_query_count so, and exporters still
// packaged today (Debian's prometheus-pgbouncer-exporter) read it by name.
// Last, it moves no column a positional reader expects.
func (s *session) stats() table {
	cols := append([]column{text("database")}, numericCols("total_", totalNames)...)
	cols = append(cols, numericCols("avg_", avgNames)...)
	t := table{cols: append(cols, numeric("total_requests"))}
	for _, d := range perDatabase(s.b.Pools()) {
		row := append(append([]any{d.name}, totals(d.Pool)...), averages(d.Pool)...)
		t.add(append(row, d.Queries)...)
	}
	return t
}

func (s *session) statsTotals() table {
	t := table{cols: append([]column{text("database")}, numericCols("", statsTotalsNames)...)}
	for _, d := range perDatabase(s.b.Pools()) {
		t.add(append([]any{d.name}, totals(d.Pool)...)...)
	}
	return t
}

func (s *session) statsAverages() table {
	t := table{cols: append([]column{text("database")}, numericCols("", statsAveragesNames)...)}
	for _, d := range perDatabase(s.b.Pools()) {
		t.add(append([]any{d.name}, averages(d.Pool)...)...)
	}
	return t
}

// totals is SHOW TOTALS: SHOW STATS over every database, one row per
// figure.
func (s *session) totals() table {
	var all observe.Pool
	for _, p := range s.b.Pools() {
		addPool(&all, p)
	}
	t := table{cols: []column{text("name"), numeric("value")}}
	for i, v := range totals(all) {
		t.add("total_"+totalsNames[i], v)
	}
	for i, v := range averages(all) {
		t.add("avg_"+totalsNames[i], v)
	}
	return t
}

// socketColumns are SHOW CLIENTS' and SHOW SERVERS' columns, PgBouncer's.
// id is declared int8 where PgBouncer says int4: pgvalve's IDs are 64-bit.
func socketColumns() []column {
	return []column{
		text("type"), text("user"), text("database"), text("replication"), text("state"),
		text("addr"), int4("port"), text("local_addr"), int4("local_port"),
		text("connect_time"), text("request_time"),
		int4("wait"), int4("wait_us"), int4("close_needed"),
		text("ptr"), text("link"), int4("remote_pid"), text("tls"),
		text("application_name"), int4("prepared_statements"), int8("id"),
	}
}

// Pointers: PgBouncer shows its sockets' addresses in ptr and link so that
// a client's link finds its server's ptr; pgvalve shows "c<client id>" and
// "s<server pid>", which join the same way.
func clientPtr(id uint64) string { return "c" + strconv.FormatUint(id, 10) }
func serverPtr(pid int32) string { return "s" + strconv.FormatInt(int64(pid), 10) }

func splitAddr(addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

// clients is SHOW CLIENTS. Like PgBouncer's it lists clients in pools, not
// those still logging in; pgvalve adds pinned at the end, the session
// state keeping a client on its server (transaction pooling).
func (s *session) clients() table {
	t := table{cols: append(socketColumns(), text("pinned"))}
	now := s.now()
	for _, c := range s.b.Clients() {
		if c.State == "login" {
			continue
		}
		var wait time.Duration
		if !c.WaitingSince.IsZero() {
			wait = now.Sub(c.WaitingSince)
		}
		link := ""
		if c.ServerPID != 0 {
			link = serverPtr(c.ServerPID)
		}
		host, port := splitAddr(c.Addr)
		t.add("C", c.User, c.Database, "none", c.State,
			host, port, "", 0,
			pgbTime(c.ConnectedAt), pgbTime(c.RequestAt),
			int(wait/time.Second), int((wait%time.Second)/time.Microsecond), 0,
			clientPtr(c.ID), link, 0, "",
			c.ApplicationName, 0, c.ID, c.Pinned)
	}
	return t
}

// servers is SHOW SERVERS; a server logging in is "new" as in PgBouncer.
func (s *session) servers() table {
	t := table{cols: socketColumns()}
	for _, v := range s.b.Servers() {
		state := v.State
		if state == "login" {
			state = "new"
		}
		link := ""
		if v.ClientID != 0 {
			link = clientPtr(v.ClientID)
		}
		host, port := splitAddr(v.Addr)
		t.add("S", v.User, v.Database, "none", state,
			host, port, "", 0,
			pgbTime(v.ConnectedAt), pgbTime(v.RequestAt),
			0, 0, 0,
			serverPtr(v.PID), link, v.PID, v.TLS,
			"", 0, int64(v.PID))
	}
	return t
}

// databases is SHOW DATABASES with reserve_pool_size repeated last as
// reserve_pool, its name before PgBouncer 1.21, which packaged exporters
// still read.
func (s *session) databases() table {
	t := table{cols: []column{
		text("name"), text("host"), int4("port"), text("database"), text("force_user"),
		int4("pool_size"), int4("min_pool_size"), int4("reserve_pool_size"), int4("server_lifetime"),
		text("pool_mode"), text("load_balance_hosts"),
		int4("max_connections"), int4("current_connections"),
		int4("max_client_connections"), int4("current_client_connections"),
		int4("paused"), int4("disabled"), int4("reserve_pool"),
	}}
	for _, d := range s.b.Databases() {
		t.add(d.Name, nullIfEmpty(d.Host), d.Port, d.DBName, nullIfEmpty(d.ForceUser),
			d.PoolSize, d.MinPoolSize, d.ReservePoolSize, int(d.ServerLifetime/time.Second),
			nullIfEmpty(d.PoolMode), nullIfEmpty(d.LoadBalanceHosts),
			d.MaxConnections, d.CurrentConnections,
			d.MaxClientConnections, d.CurrentClientConnections,
			b2i(d.Paused), b2i(d.Disabled), d.ReservePoolSize)
	}
	return t
}

// users is SHOW USERS; PgBouncer sends the per-user pool sizes as text,
// empty when the user has none of its own.
func (s *session) users() table {
	t := table{cols: []column{
		text("name"), text("pool_size"), text("reserve_pool_size"), text("pool_mode"),
		int4("max_user_connections"), int4("current_connections"),
		int4("max_user_client_connections"), int4("current_client_connections"),
	}}
	size := func(n int) string {
		if n < 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	for _, u := range s.b.Users() {
		t.add(u.Name, size(u.PoolSize), size(u.ReservePoolSize), nullIfEmpty(u.PoolMode),
			u.MaxConnections, u.CurrentConnections, u.MaxClientConnections, u.CurrentClientConnections)
	}
	return t
}

func (s *session) config() table {
	t := table{cols: []column{text("key"), text("value"), text("default"), text("changeable")}}
	for _, c := range s.b.Config() {
		t.add(c.Key, c.Value, c.Default, yesNo(c.Changeable))
	}
	return t
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// peers is SHOW PEERS: PgBouncer's peer_id, host, port and pool_size (a
// peer pool's size; pgvalve opens no pools to peers, it forwards cancel
// requests on a connection each), and pgvalve's self.
func (s *session) peers() table {
	t := table{cols: []column{int4("peer_id"), text("host"), int4("port"), int4("pool_size"), text("self")}}
	for _, p := range s.b.Peers() {
		t.add(p.ID, p.Host, p.Port, 0, yesNo(p.Self))
	}
	return t
}

// lists is SHOW LISTS, counted from the views. pgvalve keeps no free lists
// nor DNS cache: those rows are 0.
func (s *session) lists() table {
	clients := s.b.Clients()
	login := 0
	for _, c := range clients {
		if c.State == "login" {
			login++
		}
	}
	t := table{cols: []column{text("list"), int4("items")}}
	for _, r := range []struct {
		name string
		n    int
	}{
		{"databases", len(s.b.Databases())},
		{"users", len(s.b.Users())},
		{"peers", len(s.b.Peers())},
		{"pools", len(s.b.Pools())},
		{"peer_pools", 0},
		{"free_clients", 0},
		{"used_clients", len(clients)},
		{"login_clients", login},
		{"free_servers", 0},
		{"used_servers", len(s.b.Servers())},
		{"dns_names", 0},
		{"dns_zones", 0},
		{"dns_queries", 0},
		{"dns_pending", 0},
	} {
		t.add(r.name, r.n)
	}
	return t
}

// state is SHOW STATE. pgvalve never suspends.
func (s *session) state() table {
	st := s.b.State()
	t := table{cols: []column{text("key"), text("value")}}
	t.add("active", yesNo(!st.Paused))
	t.add("paused", yesNo(st.Paused))
	t.add("suspended", "no")
	return t
}

// version is SHOW VERSION: "pgvalve <version>". Exporters read the one
// column by its name, version, and keep the text as a label.
func (s *session) version() table {
	t := table{cols: []column{text("version")}}
	t.add("pgvalve " + s.b.Version())
	return t
}

// holders is SHOW HOLDERS: one row per client holding a server. held_for
// is in seconds; server_share is the client's share of its pool's server
// time over the last minute, a fraction 0..1 with three decimals; pinned
// names the session state keeping it on its server (transaction pooling).
func (s *session) holders() table {
	t := table{cols: []column{
		int8("id"), text("addr"), text("user"), text("database"), text("application_name"),
		int4("server"), tstz("held_since"), numeric("held_for"), text("state"), text("query"),
		numeric("server_share"), text("pinned"),
	}}
	now := s.now()
	for _, c := range s.b.Clients() {
		if c.ServerPID == 0 {
			continue
		}
		var heldFor any
		if !c.HeldSince.IsZero() {
			heldFor = strconv.FormatFloat(now.Sub(c.HeldSince).Seconds(), 'f', 3, 64)
		}
		t.add(c.ID, c.Addr, c.User, c.Database, c.ApplicationName,
			c.ServerPID, isoTime(c.HeldSince), heldFor, c.HoldState, truncate(c.Query, 100),
			strconv.FormatFloat(c.ServerShare, 'f', 3, 64), c.Pinned)
	}
	return t
}

// truncate keeps s's first n characters, whole.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// kindNames are SHOW LATENCY's kind column, by observe.Kind.
var kindNames = [observe.NumKinds]string{observe.Wait: "wait", observe.Query: "query", observe.Xact: "transaction"}

// latency is SHOW LATENCY: per pool and kind, quantiles in milliseconds
// over the last minute and since start, NULL where nothing was measured.
func (s *session) latency() table {
	t := table{cols: []column{
		text("database"), text("user"), text("kind"),
		int8("count"), numeric("p50_ms"), numeric("p95_ms"), numeric("p99_ms"), numeric("max_ms"),
		int8("total_count"), numeric("total_p50_ms"), numeric("total_p95_ms"), numeric("total_p99_ms"), numeric("total_max_ms"),
	}}
	quantiles := func(sum observe.Summary) []any {
		if sum.Count == 0 {
			return []any{uint64(0), nil, nil, nil, nil}
		}
		return []any{sum.Count, ms(sum.P50), ms(sum.P95), ms(sum.P99), ms(sum.Max)}
	}
	for _, p := range s.b.Pools() {
		for k := range observe.NumKinds {
			row := []any{p.Database, p.User, kindNames[k]}
			row = append(row, quantiles(p.LatencyNow[k])...)
			t.add(append(row, quantiles(p.LatencyTotal[k])...)...)
		}
	}
	return t
}

// diagnosis is SHOW DIAGNOSIS: the Source's lines, one per pool in
// trouble; no rows when none is.
func (s *session) diagnosis() table {
	t := table{cols: []column{text("diagnosis")}}
	for _, line := range s.b.Diagnosis() {
		t.add(line)
	}
	return t
}
