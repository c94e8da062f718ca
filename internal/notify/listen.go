package notify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// GapCode is the SQLSTATE of the NOTICE a client gets after the listening
// connection was lost and opened again (01000: warning).
const GapCode = "01000"

// GapMessage is that NOTICE's text.
const GapMessage = "pgvalve: the pool's listening connection was lost and reopened; notifications sent meanwhile may have been missed"

// run is the hub goroutine: it keeps a listening connection open while
// anyone listens, redialling with backoff when it is lost.
func (h *Hub) run() {
	backoff, lost := h.cfg.Backoff, false
	for {
		if h.exit(false) {
			return
		}
		conn, err := h.cfg.Dial(h.ctx)
		if err != nil {
			if h.ctx.Err() != nil {
				h.exit(true)
				return
			}
			h.cfg.Log.Warn("listening connection: dial failed", "pool", h.cfg.Name, "err", err, "retry_in", backoff)
			if !h.sleep(backoff) {
				h.exit(true)
				return
			}
			backoff = min(2*backoff, h.cfg.MaxBackoff)
			lost = true
			continue
		}
		backoff = h.cfg.Backoff
		h.conns.Add(1)
		h.cfg.Log.Info("listening connection opened", "pool", h.cfg.Name, "pid", conn.PID(), "reconnect", lost)
		done, err := h.serve(conn, lost)
		_ = conn.Close()
		h.conns.Add(-1)
		if done {
			h.cfg.Log.Info("listening connection closed", "pool", h.cfg.Name, "pid", conn.PID())
			return
		}
		h.cfg.Log.Warn("listening connection lost", "pool", h.cfg.Name, "pid", conn.PID(), "err", err)
		lost = true
		if !h.sleep(backoff) {
			h.exit(true)
			return
		}
	}
}

// exit ends the hub goroutine's turn when it must (always), is closed or
// nobody listens; it reports whether it did. Under the lock, so that a
// Subscribe either sees it running or starts another.
func (h *Hub) exit(always bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if always || h.mu.closed || h.ctx.Err() != nil || len(h.mu.subs) == 0 {
		h.mu.running = false
		return true
	}
	return false
}

func (h *Hub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}

// batch is one Query of LISTEN/UNLISTEN statements in flight: its
// ReadyForQuery answers the waiters of the channels it listens to.
type batch struct {
	waiters []*waiter
	err     error
	gap     bool // the first on a reopened connection: its answer sends the NOTICE
}

// session is what serve and its reader share about one connection.
type session struct {
	mu       sync.Mutex
	inflight []*batch
}

// serve listens on conn to the channels subscribed, following changes,
// until nobody listens (done), the hub closes (done) or conn fails.
func (h *Hub) serve(conn *backend.Conn, lost bool) (done bool, err error) {
	conn.Reader().SetWhole(func(typ byte) bool { return typ == 'A' || typ == 'E' })
	var ss session
	readErr := make(chan error, 1)
	go func() { readErr <- h.read(conn, &ss) }()
	defer func() {
		_ = conn.Close()
		<-readErr
	}()
	listening := make(map[string]bool)
	for {
		h.mu.Lock()
		if h.mu.closed || h.ctx.Err() != nil || len(h.mu.subs) == 0 {
			h.mu.running = false
			h.mu.Unlock()
			return true, nil
		}
		var sql []string
		// The NOTICE waits for the answer to the first LISTENs: whatever
		// is sent after the client has it must reach the client.
		b := &batch{gap: lost}
		lost = false
		for ch := range h.mu.subs {
			if !listening[ch] {
				listening[ch] = true
				sql = append(sql, "LISTEN "+ident(ch))
				b.waiters = append(b.waiters, h.mu.ready[ch])
			}
		}
		for ch := range listening {
			if h.mu.subs[ch] == nil {
				delete(listening, ch)
				sql = append(sql, "UNLISTEN "+ident(ch))
			}
		}
		h.mu.Unlock()
		if len(sql) > 0 {
			sort.Strings(sql) // LISTENs before UNLISTENs, for the logs' sake
			ss.mu.Lock()
			ss.inflight = append(ss.inflight, b)
			ss.mu.Unlock()
			msg, _ := (&pgproto3.Query{String: strings.Join(sql, "; ")}).Encode(nil)
			if _, err := conn.Write(msg); err != nil {
				return false, fmt.Errorf("write: %w", err)
			}
		}
		select {
		case <-h.mu.wake:
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return false, err
		case <-h.ctx.Done():
		}
	}
}

// read reads the listening connection: notifications go to their
// channel's subscribers, each ReadyForQuery answers the oldest batch.
func (h *Hub) read(conn *backend.Conn, ss *session) error {
	rd := conn.Reader()
	for {
		f, ok, err := rd.Next()
		if err != nil {
			return err
		}
		if !ok {
			rd.Take()
			if err := rd.Fill(); err != nil {
				return err
			}
			continue
		}
		switch f.Type {
		case 'A':
			if ch, ok := channelOf(f.Body); ok {
				h.deliver(ch, wholeMessage(f))
			}
		case 'E':
			ss.mu.Lock()
			if len(ss.inflight) > 0 && ss.inflight[0].err == nil {
				ss.inflight[0].err = backend.DecodeError(f.Body)
			}
			ss.mu.Unlock()
		case 'Z':
			ss.mu.Lock()
			var b *batch
			if len(ss.inflight) > 0 {
				b = ss.inflight[0]
				ss.inflight = ss.inflight[1:]
				for _, w := range b.waiters {
					w.answer(b.err)
				}
				if b.err != nil {
					h.cfg.Log.Warn("listening connection: LISTEN failed", "pool", h.cfg.Name, "err", b.err)
				}
			}
			ss.mu.Unlock()
			if b != nil && b.gap {
				h.deliverAll(wire.AppendNotice(nil, GapCode, GapMessage))
			}
		}
	}
}

func (w *waiter) answer(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.done)
	})
}

// channelOf reads a NotificationResponse's channel: after the sender's
// process ID, up to its NUL.
func channelOf(body []byte) (string, bool) {
	if len(body) < 5 {
		return "", false
	}
	ch, _, ok := bytes.Cut(body[4:], []byte{0})
	return string(ch), ok
}

// wholeMessage is f as it came on the wire, copied.
func wholeMessage(f wire.Frame) []byte {
	out := make([]byte, 5+len(f.Body))
	out[0] = f.Type
	binary.BigEndian.PutUint32(out[1:5], uint32(4+len(f.Body)))
	copy(out[5:], f.Body)
	return out
}

// ident quotes a channel name as PostgreSQL folded it.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
