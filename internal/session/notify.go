package session

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/notify"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/sqlscan"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// In transaction and statement pooling a client's LISTEN, sent alone as
// a simple Query while it holds no server, is answered here and joins the
// pool's shared listening connection (notify.Hub), which delivers the
// notifications through the client's inbox whether or not the client
// holds a server. A LISTEN any other way (inside a transaction block, in
// a multi-statement string, over the extended protocol) goes to the
// server and pins the client to it, as before.

// maxHeld bounds the notifications held for one client that does not read
// them; past it they are dropped, and the client is told so.
const maxHeld = 1 << 20

// subscribeTimeout bounds how long a LISTEN waits for the listening
// connection to listen.
const subscribeTimeout = 10 * time.Second

// inbox holds what the hub delivers to one client until it can be written
// at a message boundary. The server side takes mu around its writes and
// records whether it stopped inside a message (mid).
type inbox struct {
	s    *Session
	mu   sync.Mutex
	mid  bool   // the last write to the client stopped inside a message
	held []byte // whole messages waiting to be written
	lost bool   // some were dropped for want of room
	kick chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

// Deliver takes one message from the hub; it never blocks on the client.
func (b *inbox) Deliver(msg []byte) {
	b.mu.Lock()
	if len(b.held)+len(msg) > maxHeld {
		b.lost = true
	} else {
		b.held = append(b.held, msg...)
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// flushLocked writes what is held unless a write stopped inside a message.
func (b *inbox) flushLocked() {
	if b.mid || (len(b.held) == 0 && !b.lost) {
		return
	}
	if b.lost {
		b.lost = false
		b.held = wire.AppendNotice(b.held, notify.GapCode,
			"pgvalve: notifications were dropped: the client did not read them")
	}
	_, _ = b.s.sock.Write(b.held) // a dead client is the session's to notice
	b.held = b.held[:0]
}

// writeClient writes whole messages or a server's span to the client;
// mid says the span stops inside a message. Held notifications follow
// when it does not.
func (s *Session) writeClient(p []byte, mid bool) error {
	b := s.inbox
	if b == nil {
		_, err := s.sock.Write(p)
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := s.sock.Write(p)
	b.mid = mid
	b.flushLocked()
	return err
}

// startInbox makes the client's inbox and its writer, which the session
// ends as it ends (closeInbox).
func (s *Session) startInbox() {
	if s.inboxReady {
		return
	}
	s.inboxReady = true
	b := s.inbox
	ctx, stop := context.WithCancel(context.Background())
	b.stop, b.done = stop, make(chan struct{})
	go func() {
		defer close(b.done)
		for {
			select {
			case <-b.kick:
				b.mu.Lock()
				b.flushLocked()
				b.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
}

// closeInbox takes the client off the pool's listening connection and ends
// its inbox's writer.
func (s *Session) closeInbox() {
	if s.route.Notify == nil || s.inbox == nil {
		return
	}
	s.route.Notify.UnsubscribeAll(s.inbox)
	if s.inboxReady {
		s.inbox.stop()
		<-s.inbox.done
	}
}

// answerListen answers a lone LISTEN or UNLISTEN from a client that holds
// no server, through the pool's listening connection. PostgreSQL's LISTEN
// inside a transaction block waits for the commit; one answered here is
// never inside one (a transaction holds its server).
func (s *Session) answerListen(ctx context.Context, span []byte, requests int, last byte) (done bool, err error) {
	hub := s.route.Notify
	if hub == nil || s.route.Mode == config.PoolSession || requests != 1 || last != 'Q' ||
		s.rd.Streaming() != 0 || s.txLost || s.current() != nil {
		return false, nil
	}
	e, ok := loneListen(span)
	if !ok {
		return false, nil
	}
	s.reclaim() // the last server side's answers reach the client first
	var out []byte
	switch e.Kind {
	case sqlscan.Listen:
		if s.inbox == nil {
			s.inbox = &inbox{s: s, kick: make(chan struct{}, 1)} // no server side runs: see reclaim above
		}
		sctx, cancel := context.WithTimeout(ctx, subscribeTimeout)
		err := hub.Subscribe(sctx, s.inbox, e.Name)
		cancel()
		if err != nil {
			s.log().Warn("LISTEN through the pool's listening connection failed", "channel", e.Name, "err", err)
			out = wire.AppendError(out, wire.SeverityError, reason.ServerLost.Code(),
				"pgvalve: could not LISTEN on the pool's listening connection: "+err.Error())
			break
		}
		s.startInbox()
		out = wire.Append(out, &pgproto3.CommandComplete{CommandTag: []byte("LISTEN")})
	case sqlscan.Unlisten:
		if s.inbox != nil {
			hub.Unsubscribe(s.inbox, e.Name)
		}
		out = wire.Append(out, &pgproto3.CommandComplete{CommandTag: []byte("UNLISTEN")})
	}
	out = wire.Append(out, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	return true, s.writeClient(out, false)
}

// loneListen reads span as one whole Query message holding one LISTEN or
// UNLISTEN statement.
func loneListen(span []byte) (sqlscan.Effect, bool) {
	if len(span) < 6 || span[0] != 'Q' || int(binary.BigEndian.Uint32(span[1:5]))+1 != len(span) {
		return sqlscan.Effect{}, false
	}
	q := queryText('Q', span[5:])
	if !mayHaveEffects(q) || len(sqlscan.Statements(string(q), 3)) != 1 {
		return sqlscan.Effect{}, false
	}
	eff := sqlscan.Effects(string(q))
	if len(eff) != 1 || (eff[0].Kind != sqlscan.Listen && eff[0].Kind != sqlscan.Unlisten) {
		return sqlscan.Effect{}, false
	}
	return eff[0], true
}

// unlistenedLocked takes the client off the listening connection's
// channels a statement sent to its server unlistens (UNLISTEN, DISCARD
// ALL). The caller holds s.mu; the hub does no I/O here.
func (s *Session) unlistenedLocked(effects []sqlscan.Effect) {
	hub := s.route.Notify
	if hub == nil || s.inbox == nil {
		return
	}
	for _, e := range effects {
		switch e.Kind {
		case sqlscan.Unlisten:
			hub.Unsubscribe(s.inbox, e.Name)
		case sqlscan.DiscardAll:
			hub.UnsubscribeAll(s.inbox)
		}
	}
}
