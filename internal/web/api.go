package web

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/pgvalve/pgvalve/internal/observe"
)

// The API's answers. Field names are snake_case; durations are seconds as
// floats; instants are RFC 3339 strings, null when they did not happen.
// docs/api.md describes each endpoint; keep the two together.

type endpoint struct {
	Name, Doc string
	build     func(s *Server, r *http.Request, now time.Time) (any, error)
}

var endpoints = []endpoint{
	{"pools", "each pool's clients, servers, totals and last-minute latency", (*Server).pools},
	{"clients", "every client connection", (*Server).clients},
	{"holders", "the clients holding a server, longest-held first", (*Server).holders},
	{"servers", "every server connection", (*Server).servers},
	{"diagnosis", "one line per pool in trouble, and the errors pgvalve sent to clients", (*Server).diagnosis},
	{"history", "each pool's samples over the last minutes (?since=unix seconds, ?pool=database/user)", (*Server).history},
}

// seconds is a duration that encodes as seconds.
type seconds time.Duration

func (d seconds) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, time.Duration(d).Seconds(), 'f', -1, 64), nil
}

// instant is a time that encodes as RFC 3339, and as null when zero.
type instant time.Time

func (t instant) MarshalJSON() ([]byte, error) {
	if time.Time(t).IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(time.Time(t).UTC().Format(time.RFC3339Nano))
}

// since is how long ago t was at now; 0 when t is zero.
func since(now, t time.Time) seconds {
	if t.IsZero() || t.After(now) {
		return 0
	}
	return seconds(now.Sub(t))
}

type summaryJSON struct {
	Count uint64  `json:"count"`
	Sum   seconds `json:"sum"`
	P50   seconds `json:"p50"`
	P95   seconds `json:"p95"`
	P99   seconds `json:"p99"`
	Max   seconds `json:"max"`
}

func summary(s observe.Summary) summaryJSON {
	return summaryJSON{s.Count, seconds(s.Sum), seconds(s.P50), seconds(s.P95), seconds(s.P99), seconds(s.Max)}
}

type poolJSON struct {
	Database    string `json:"database"`
	User        string `json:"user"`
	Mode        string `json:"mode"`
	Size        int    `json:"size"`
	ReserveSize int    `json:"reserve_size"`
	Paused      bool   `json:"paused"`
	Draining    bool   `json:"draining"`

	ClientsActive  int     `json:"clients_active"`
	ClientsWaiting int     `json:"clients_waiting"`
	ClientsLogin   int     `json:"clients_login"`
	ServersActive  int     `json:"servers_active"`
	ServersIdle    int     `json:"servers_idle"`
	ServersUsed    int     `json:"servers_used"`
	ServersLogin   int     `json:"servers_login"`
	ServersClosing int     `json:"servers_closing"`
	MaxWait        seconds `json:"max_wait"`

	Acquires      int64            `json:"acquires"`
	Waits         int64            `json:"waits"`
	WaitTimeouts  int64            `json:"wait_timeouts"`
	DialErrors    int64            `json:"dial_errors"`
	Xacts         int64            `json:"xacts"`
	Queries       int64            `json:"queries"`
	BytesReceived int64            `json:"bytes_received"`
	BytesSent     int64            `json:"bytes_sent"`
	WaitTime      seconds          `json:"wait_time"`
	QueryTime     seconds          `json:"query_time"`
	XactTime      seconds          `json:"xact_time"`
	ServersClosed map[string]int64 `json:"servers_closed"`
	LastDialError string           `json:"last_dial_error"`

	// Latency is the last minute's, by kind: wait, query, xact.
	Latency latencyJSON `json:"latency"`
}

type latencyJSON struct {
	Wait  summaryJSON `json:"wait"`
	Query summaryJSON `json:"query"`
	Xact  summaryJSON `json:"xact"`
}

func (s *Server) pools(_ *http.Request, now time.Time) (any, error) {
	ps := s.src.Pools()
	out := make([]poolJSON, 0, len(ps))
	for _, p := range ps {
		closed := p.ServersClosed
		if closed == nil {
			closed = map[string]int64{}
		}
		out = append(out, poolJSON{
			Database: p.Database, User: p.User, Mode: p.Mode,
			Size: p.Size, ReserveSize: p.ReserveSize, Paused: p.Paused, Draining: p.Draining,
			ClientsActive: p.ClientsActive, ClientsWaiting: p.ClientsWaiting, ClientsLogin: p.ClientsLogin,
			ServersActive: p.ServersActive, ServersIdle: p.ServersIdle, ServersUsed: p.ServersUsed,
			ServersLogin: p.ServersLogin, ServersClosing: p.ServersClosing,
			MaxWait:  seconds(p.MaxWait),
			Acquires: p.Acquires, Waits: p.Waits, WaitTimeouts: p.WaitTimeouts, DialErrors: p.DialErrors,
			Xacts: p.Xacts, Queries: p.Queries, BytesReceived: p.BytesReceived, BytesSent: p.BytesSent,
			WaitTime: seconds(p.WaitTime), QueryTime: seconds(p.QueryTime), XactTime: seconds(p.XactTime),
			ServersClosed: closed, LastDialError: p.LastDialError,
			Latency: latencyJSON{
				Wait:  summary(p.LatencyNow[observe.Wait]),
				Query: summary(p.LatencyNow[observe.Query]),
				Xact:  summary(p.LatencyNow[observe.Xact]),
			},
		})
	}
	return struct {
		Time  instant    `json:"time"`
		Pools []poolJSON `json:"pools"`
	}{instant(now), out}, nil
}

type clientJSON struct {
	ID              uint64  `json:"id"`
	Addr            string  `json:"addr"`
	User            string  `json:"user"`
	Database        string  `json:"database"`
	ApplicationName string  `json:"application_name"`
	ConnectedAt     instant `json:"connected_at"`
	ConnectedFor    seconds `json:"connected_for"`
	State           string  `json:"state"`
	RequestAt       instant `json:"request_at"`
	WaitingSince    instant `json:"waiting_since"`
	WaitingFor      seconds `json:"waiting_for"`
	ServerPID       int32   `json:"server_pid"`
	HeldSince       instant `json:"held_since"`
	HeldFor         seconds `json:"held_for"`
	HoldState       string  `json:"hold_state"`
	Query           string  `json:"query"`
	ServerShare     float64 `json:"server_share"`
}

func client(c observe.Client, now time.Time) clientJSON {
	return clientJSON{
		ID: c.ID, Addr: c.Addr, User: c.User, Database: c.Database, ApplicationName: c.ApplicationName,
		ConnectedAt: instant(c.ConnectedAt), ConnectedFor: since(now, c.ConnectedAt),
		State: c.State, RequestAt: instant(c.RequestAt),
		WaitingSince: instant(c.WaitingSince), WaitingFor: since(now, c.WaitingSince),
		ServerPID: c.ServerPID, HeldSince: instant(c.HeldSince), HeldFor: since(now, c.HeldSince),
		HoldState: c.HoldState, Query: c.Query, ServerShare: c.ServerShare,
	}
}

func clientsJSON(cs []observe.Client, now time.Time) []clientJSON {
	out := make([]clientJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, client(c, now))
	}
	return out
}

func (s *Server) clients(_ *http.Request, now time.Time) (any, error) {
	out := clientsJSON(s.src.Clients(), now)
	return struct {
		Time    instant      `json:"time"`
		Clients []clientJSON `json:"clients"`
	}{instant(now), out}, nil
}

func (s *Server) holders(_ *http.Request, now time.Time) (any, error) {
	var hs []observe.Client
	for _, c := range s.src.Clients() {
		if c.ServerPID != 0 {
			hs = append(hs, c)
		}
	}
	// Longest-held first: the first row is the likeliest culprit.
	slices.SortStableFunc(hs, func(a, b observe.Client) int {
		return a.HeldSince.Compare(b.HeldSince)
	})
	out := clientsJSON(hs, now)
	return struct {
		Time    instant      `json:"time"`
		Holders []clientJSON `json:"holders"`
	}{instant(now), out}, nil
}

type serverJSON struct {
	PID          int32   `json:"pid"`
	Database     string  `json:"database"`
	User         string  `json:"user"`
	State        string  `json:"state"`
	ConnectedAt  instant `json:"connected_at"`
	ConnectedFor seconds `json:"connected_for"`
	RequestAt    instant `json:"request_at"`
	ClientID     uint64  `json:"client_id"`
	Addr         string  `json:"addr"`
}

func (s *Server) servers(_ *http.Request, now time.Time) (any, error) {
	ss := s.src.Servers()
	out := make([]serverJSON, 0, len(ss))
	for _, v := range ss {
		out = append(out, serverJSON{
			PID: v.PID, Database: v.Database, User: v.User, State: v.State,
			ConnectedAt: instant(v.ConnectedAt), ConnectedFor: since(now, v.ConnectedAt),
			RequestAt: instant(v.RequestAt), ClientID: v.ClientID, Addr: v.Addr,
		})
	}
	return struct {
		Time    instant      `json:"time"`
		Servers []serverJSON `json:"servers"`
	}{instant(now), out}, nil
}

func (s *Server) diagnosis(_ *http.Request, now time.Time) (any, error) {
	lines := s.src.Diagnosis()
	if lines == nil {
		lines = []string{}
	}
	errs := s.src.ClientErrors()
	if errs == nil {
		errs = map[string]int64{}
	}
	return struct {
		Time         instant          `json:"time"`
		Lines        []string         `json:"lines"`
		ClientErrors map[string]int64 `json:"client_errors"`
	}{instant(now), lines, errs}, nil
}

func (s *Server) history(r *http.Request, now time.Time) (any, error) {
	afterMS := int64(math.MinInt64)
	if v := r.URL.Query().Get("since"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("since: want unix seconds, got %q", v)
		}
		// The samples' t are whole milliseconds; so is since.
		afterMS = int64(math.Round(f * 1e3))
	}
	return struct {
		Time     instant       `json:"time"`
		Interval seconds       `json:"interval"`
		Keep     seconds       `json:"keep"`
		Pools    []poolHistory `json:"pools"`
	}{instant(now), seconds(s.opts.Interval), seconds(s.opts.Keep), s.hist.read(afterMS, r.URL.Query().Get("pool"))}, nil
}

func (s *Server) apiIndex(w http.ResponseWriter, _ *http.Request) {
	type entry struct {
		Path string `json:"path"`
		Doc  string `json:"doc"`
	}
	out := make([]entry, 0, len(endpoints))
	for _, e := range endpoints {
		out = append(out, entry{"/api/" + e.Name, e.Doc})
	}
	writeJSON(w, http.StatusOK, struct {
		Endpoints []entry `json:"endpoints"`
	}{out})
}

// api turns an endpoint's builder into a handler: its answer as JSON, or
// 400 with {"error": ...} when the request is wrong.
func (s *Server) api(build func(*Server, *http.Request, time.Time) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := build(s, r, s.opts.Now())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, struct {
				Error string `json:"error"`
			}{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
