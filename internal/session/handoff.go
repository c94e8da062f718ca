package session

import (
	"context"
	"errors"
	"maps"
	"net"
	"syscall"

	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/stmt"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Online restart (internal/takeover): while the app hands its clients to
// a new pgvalve process, a draining client that reaches a safe point with
// nothing else in flight goes there with its state, instead of hearing
// that pgvalve shuts down. The state is what a client's next request
// needs from its session: who it is, its cancel key, what it was told of
// its settings, the settings it made, and its prepared statements. A
// client pgvalve cannot describe that way (session pooling, TLS, LISTEN,
// a pin, a statement made by SQL PREPARE) drains as in a shutdown.

// Handoff is a client's state on its way to a new process.
type Handoff struct {
	Remote   string       `json:"remote"`
	User     string       `json:"user"`
	Database string       `json:"database"`
	Params   []wire.Param `json:"params,omitempty"`
	// PID and Secret are the cancel key the client holds.
	PID    uint32 `json:"pid"`
	Secret []byte `json:"secret"`
	// Reported is every setting the client was told, as it was told.
	Reported map[string]string `json:"reported"`
	// Batched: the client sent a batch already (its session state and
	// statement tracker exist); Sets are its own settings, name and SQL.
	Batched bool        `json:"batched,omitempty"`
	Sets    [][2]string `json:"sets,omitempty"`
	// Tracked: its statements are tracked, and are Statements; StmtFx
	// are the texts of those that have session-state effects.
	Tracked    bool              `json:"tracked,omitempty"`
	Statements []stmt.Saved      `json:"statements,omitempty"`
	StmtFx     map[string]string `json:"stmt_fx,omitempty"`
}

// HandOffFunc gives conn, with its state, to the new process; conn stays
// open here, and an error keeps the client here (it then drains).
type HandOffFunc func(conn net.Conn, h *Handoff) error

// SetHandOff makes draining clients go to f where they can (nil: none
// goes, as in a shutdown).
func (e *Env) SetHandOff(f HandOffFunc) {
	if f == nil {
		e.handOff.Store(nil)
		return
	}
	e.handOff.Store(&f)
}

// errHandedOver ends a session whose client went to a new process: its
// ends run as usual (closing this process's copy of the socket), and the
// client hears nothing.
var errHandedOver = errors.New("client handed over to a new pgvalve process")

// handOff gives the client to the new process, if the app hands clients
// over and this one can go; true when it went.
func (s *Session) handOff() bool {
	send := s.env.handOff.Load()
	if send == nil {
		return false
	}
	s.reclaim() // the client view comes back from the last server side
	h, ok := s.save()
	if !ok {
		return false
	}
	if err := (*send)(s.conn, h); err != nil {
		s.log().Warn("client not handed over; it drains here", "err", err)
		return false
	}
	return true
}

// save describes the client for a new process, if it can go.
func (s *Session) save() (*Handoff, bool) {
	if !s.canGo() {
		return nil, false
	}
	h := &Handoff{Remote: s.remote, User: s.user, Database: s.db, Params: s.params,
		PID: s.key.PID, Secret: s.key.Secret, Reported: map[string]string{}}
	maps.Copy(h.Reported, s.view.reported.base)
	maps.Copy(h.Reported, s.view.reported.own)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.mu.state; st != nil {
		if st.pins.pinned() || len(st.sets.pending) > 0 || len(st.sets.inTx) > 0 {
			return nil, false
		}
		h.Batched = true
		for _, set := range st.sets.list {
			h.Sets = append(h.Sets, [2]string{set.name, set.sql})
		}
	}
	if s.tr != nil {
		saved, ok := s.tr.Save()
		if !ok {
			return nil, false
		}
		h.Tracked, h.Statements, h.StmtFx = true, saved, s.stmtFx
	}
	return h, true
}

// mayGo says a draining client will go to the new process at a safe
// point: until then it is served as usual (its batch was read already,
// and ending it now would fail it), instead of ended as in a shutdown.
func (s *Session) mayGo() bool {
	if s.env.handOff.Load() == nil || s.route.Mode == config.PoolSession || s.inbox != nil {
		return false
	}
	_, plain := s.sock.(*wire.Socket)
	return plain
}

// canGo says the client waits between transactions with nothing half
// read or owed, on a plain socket whose descriptor can be sent, in
// transaction or statement pooling, holding nothing that lives only here.
func (s *Session) canGo() bool {
	if !s.mayGo() || s.view == nil || s.txLost || s.lostWhy != nil {
		return false // TLS (its keys live in this process), LISTEN, a lost server
	}
	if s.rd.Buffered() != 0 || s.rd.InMessage() || s.skip != 0 || s.partialSent || s.current() != nil {
		return false
	}
	_, ok := s.conn.(syscall.Conn)
	return ok
}

// Adopt carries on a client another pgvalve process handed over (h), on
// c's connection, as Run carries on a new one after its greeting: the
// client already has it, and its next message may be buffered already.
func Adopt(ctx context.Context, env *Env, c Client, h *Handoff) error {
	// A client this process cannot carry on hears what a shutdown would
	// have told it in the old one.
	if h.Tracked && env.Live().MaxPreparedStatements <= 0 && len(h.Statements) > 0 {
		env.Fatal(c.Conn, reason.ShuttingDown)
		return errors.New("the client has prepared statements and max_prepared_statements is 0 here")
	}
	s := newSession(ctx, env, c)
	key := cancel.Key{PID: h.PID, Secret: h.Secret}
	unregister, err := env.Cancels.RegisterKey(key, s)
	if err != nil {
		env.Fatal(c.Conn, reason.ShuttingDown)
		return err
	}
	s.keyed(key, unregister)
	s.restore(h)
	return s.proceed(ctx, s.adopted)
}

// restore puts h's state in a session Adopt made.
func (s *Session) restore(h *Handoff) {
	s.view = &clientView{reported: reportedParams{base: h.Reported}}
	if h.Batched {
		st := new(state)
		for _, set := range h.Sets {
			st.sets.list = append(st.sets.list, setting{name: set[0], sql: set[1]})
		}
		st.sets.rebuild()
		s.mu.state = st
		if s.tracks() {
			s.tr = stmt.Restore(h.Statements)
		}
	}
	s.stmtFx = h.StmtFx
}

// adopted is serve for a client that was greeted by another process.
func (s *Session) adopted(ctx context.Context) error {
	s.own.Push(func() { s.unlink(ctx) })
	s.own.Push(s.stopTimers)
	s.readNow()
	if err := s.readClient(ctx, false); err != nil {
		return err
	}
	return s.clientSide(ctx)
}
