package stmt

import (
	"bytes"
	"container/list"
)

// Statement is one prepared statement's content and its server-side name.
type Statement struct {
	Query      string
	ParamTypes []byte
	Server     string
	// shape is what PostgreSQL fixed for the statement when the client
	// parsed it: its parameter and result types (see shape.go); 0 until a
	// server has described it. parsed says a Parse of it was sent for the
	// client; a deferred one gets its first at first use.
	shape  uint64
	parsed bool
	// desc is the ParameterDescription body the shape came from, and rows
	// whether the statement returns rows: what PostgreSQL still answers
	// about it inside a failed transaction.
	desc []byte
	rows bool
	// act is what executing it does to prepared statements, when it is a
	// DEALLOCATE or DISCARD ALL.
	act action
	// sql is what followed the name in the client's SQL PREPARE ("" for a
	// statement made with Parse): "[(types)] AS statement". typed says it
	// declares parameter types, which a Parse cannot say by name: such a
	// statement is prepared again only with PREPARE.
	sql   string
	typed bool
	// ref is the client's name a Parse-made EXECUTE (or EXPLAIN/CREATE
	// TABLE AS EXECUTE) names, uses the client's statement it named when
	// parsed (nil: none), and rewritten the text the server gets, with
	// ref renamed to uses' server copy (see sqlparse.go).
	ref       string
	uses      *Statement
	rewritten string
}

// NewStatement makes a client's statement from its Parse. Its server name
// comes from the text the server gets (see sent).
func NewStatement(p Parse) *Statement {
	st := &Statement{Query: p.Query, ParamTypes: p.ParamTypes, act: actionOf(p.Query)}
	st.Server = ServerName(st.sent(), p.ParamTypes)
	return st
}

// recentParse is the content of the client's latest plain Parse (one
// whose text names no statement and drops none) and its server name.
// Drivers that use the unnamed statement (pgx, pgbench -M extended) parse
// the same text on every execution: its strings are shared with the last
// one instead of copied, scanned and hashed again. A Statement is still
// made afresh for every Parse, as its shape may differ.
type recentParse struct {
	Parse
	server string
}

// decodeParse is DecodeParse, sharing the latest plain Parse's strings.
func (t *Tracker) decodeParse(body []byte) (Parse, error) {
	var like *Parse
	if t.recent != nil {
		like = &t.recent.Parse
	}
	return decodeParse(body, like)
}

// recentStatement is the statement of p if p is the latest plain Parse
// again.
func (t *Tracker) recentStatement(p Parse) (*Statement, bool) {
	r := t.recent
	if r == nil || p.Query != r.Query || !bytes.Equal(p.ParamTypes, r.ParamTypes) {
		return nil, false
	}
	return &Statement{Query: p.Query, ParamTypes: p.ParamTypes, Server: r.server}, true
}

// notePlain remembers st, made from a Parse found plain, for recentStatement.
func (t *Tracker) notePlain(st *Statement) {
	if t.recent == nil {
		t.recent = &recentParse{}
	}
	*t.recent = recentParse{Parse: Parse{Query: st.Query, ParamTypes: st.ParamTypes}, server: st.Server}
}

// sent is the text PostgreSQL gets for the statement: a DEALLOCATE of one
// of the client's names means nothing to the server, which holds it under
// another, so every server statement is dropped instead (and prepared
// again on demand); whether the name exists is decided by pgvalve.
func (s *Statement) sent() string {
	if s.act.dealloc != "" {
		return "DEALLOCATE ALL"
	}
	if s.rewritten != "" {
		return s.rewritten
	}
	return s.Query
}

// Registry is one client's named statements, under the client's names. It
// is what the client would see on a server of its own.
type Registry struct {
	m map[string]*Statement
	// unnamed is the client's unnamed statement: drivers prepare it in one
	// round trip and bind it in the next (pgx's describe-exec mode), which
	// in transaction pooling may land on another server.
	unnamed *Statement
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: make(map[string]*Statement)} }

// Get returns the client's statement called name.
func (r *Registry) Get(name string) (*Statement, bool) {
	s, ok := r.m[name]
	return s, ok
}

// Add records a statement the client prepared.
func (r *Registry) Add(name string, s *Statement) { r.m[name] = s }

// Remove forgets a statement (Close, DEALLOCATE, a failed Parse).
func (r *Registry) Remove(name string) { delete(r.m, name) }

// Clear forgets every statement (DEALLOCATE ALL, DISCARD ALL).
func (r *Registry) Clear() {
	clear(r.m)
	r.unnamed = nil
}

// Len is the number of statements.
func (r *Registry) Len() int { return len(r.m) }

// ServerSet is the statements prepared on one server connection, least
// recently used first, bounded by max_prepared_statements.
type ServerSet struct {
	// unnamed names the content of the server's unnamed statement ("" for
	// none or unknown).
	unnamed string
	// unsure: the server may hold statements the set does not list (one of
	// its statements vanished, or a DO block ran): each is closed before
	// it is prepared.
	unsure bool
	// shapes are the shapes the server described for its statements. They
	// are facts from answers, so reverting a message's effects never
	// touches them; a statement closed on the server loses its own.
	shapes map[string]uint64
	max    int
	ll     list.List // of *serverStmt, most recently used at the front
	m      map[string]*list.Element
}

type serverStmt struct {
	name  string
	stale bool // its cached plan went stale: re-prepare before use
}

// NewServerSet returns an empty set holding at most max statements.
func NewServerSet(max int) *ServerSet {
	return &ServerSet{max: max, m: make(map[string]*list.Element)}
}

// Ready reports whether name is prepared and usable, and marks it used.
func (s *ServerSet) Ready(name string) bool {
	e, ok := s.m[name]
	if !ok || e.Value.(*serverStmt).stale {
		return false
	}
	s.ll.MoveToFront(e)
	return true
}

// Stale reports whether name is held but must be prepared afresh.
func (s *ServerSet) Stale(name string) bool {
	e, ok := s.m[name]
	return ok && e.Value.(*serverStmt).stale
}

// Has reports whether the server holds name at all, stale or not.
func (s *ServerSet) Has(name string) bool {
	_, ok := s.m[name]
	return ok
}

// Add records name as prepared. While the set is full it returns least
// recently used statements not in keep, which the caller must close on the
// server; a batch needing more than max statements at once is allowed to
// overflow, and later Adds bring the set back down.
func (s *ServerSet) Add(name string, keep map[string]bool) (evict []string) {
	if e, ok := s.m[name]; ok {
		e.Value.(*serverStmt).stale = false
		s.ll.MoveToFront(e)
		return nil
	}
	evict = s.victims(keep)
	for _, v := range evict {
		s.Remove(v)
	}
	s.insert(name)
	return evict
}

// victims returns the least recently used statements not in keep that must
// go to make room for one more.
func (s *ServerSet) victims(keep map[string]bool) (evict []string) {
	n := s.ll.Len()
	for e := s.ll.Back(); e != nil && n >= s.max; e = e.Prev() {
		if v := e.Value.(*serverStmt); !keep[v.name] {
			evict = append(evict, v.name)
			n--
		}
	}
	return evict
}

// insert records name, not held, as prepared and most recently used.
func (s *ServerSet) insert(name string) {
	s.m[name] = s.ll.PushFront(&serverStmt{name: name})
}

// restore puts back a statement whose Close the server skipped, as least
// recently used.
func (s *ServerSet) restore(v serverStmt) {
	if _, ok := s.m[v.name]; !ok {
		s.m[v.name] = s.ll.PushBack(&v)
	}
}

// get returns a copy of name's record.
func (s *ServerSet) get(name string) (serverStmt, bool) {
	if e, ok := s.m[name]; ok {
		return *e.Value.(*serverStmt), true
	}
	return serverStmt{}, false
}

// snapshot copies the set, most recently used first.
func (s *ServerSet) snapshot() []serverStmt {
	out := make([]serverStmt, 0, s.ll.Len())
	for e := s.ll.Front(); e != nil; e = e.Next() {
		out = append(out, *e.Value.(*serverStmt))
	}
	return out
}

// restoreAll replaces the set with a snapshot.
func (s *ServerSet) restoreAll(saved []serverStmt) {
	s.ll.Init()
	clear(s.m)
	for _, v := range saved {
		s.m[v.name] = s.ll.PushBack(&serverStmt{name: v.name, stale: v.stale})
	}
}

// Remove forgets name (closed, or its Parse failed).
func (s *ServerSet) Remove(name string) {
	if e, ok := s.m[name]; ok {
		s.ll.Remove(e)
		delete(s.m, name)
	}
}

// MarkStale records that name's plan went stale after DDL.
func (s *ServerSet) MarkStale(name string) {
	if e, ok := s.m[name]; ok {
		e.Value.(*serverStmt).stale = true
	}
}

// Clear forgets everything (the server ran DEALLOCATE ALL or DISCARD ALL).
func (s *ServerSet) Clear() {
	s.ll.Init()
	clear(s.m)
	s.unnamed = ""
}

// Forget records that the server's statements are unknown: something
// pgvalve cannot see into (a DO block, a function) may have dropped them.
// Each is prepared afresh, after a Close, when next used.
func (s *ServerSet) Forget() {
	s.Clear()
	clear(s.shapes)
	s.unsure = true
}

// shape returns the shape the server last described for name, 0 if none.
func (s *ServerSet) shape(name string) uint64 { return s.shapes[name] }

// setShape records the shape PostgreSQL described for name.
func (s *ServerSet) setShape(name string, shape uint64) {
	if s.shapes == nil {
		s.shapes = make(map[string]uint64)
	}
	s.shapes[name] = shape
}

// closed records that the server closed name.
func (s *ServerSet) closed(name string) { delete(s.shapes, name) }

// Len is the number of statements held.
func (s *ServerSet) Len() int { return s.ll.Len() }
