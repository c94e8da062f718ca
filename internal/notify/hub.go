// Package notify shares one listening server connection among a pool's
// transaction-pooled clients: the union of their LISTENed channels is
// listened to there, and each notification goes to every client that
// listens to its channel, whether or not it holds a server then.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvalve/pgvalve/internal/backend"
)

// Sink receives the bytes of whole protocol messages (NotificationResponse,
// NoticeResponse) for one client. It must not block: the hub delivers to
// every client from one goroutine, in the order the server sent.
type Sink interface {
	Deliver(msg []byte)
}

// Dialer opens the listening connection, logged in as the pool's servers
// are. The connection's application_name should tell it apart.
type Dialer func(ctx context.Context) (*backend.Conn, error)

// Config sets up a Hub.
type Config struct {
	Name string // the pool's, for the logs
	Dial Dialer
	Log  *slog.Logger
	// Backoff is the first wait before a redial after the connection is
	// lost or cannot be opened (doubled up to MaxBackoff).
	Backoff, MaxBackoff time.Duration
}

// Hub is one pool's listening connection and its subscribers. Its
// goroutine starts at the first subscription and ends, closing the
// connection, when nobody listens any more or Close is called.
type Hub struct {
	cfg   Config
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	conns atomic.Int64 // listening connections open now (0 or 1)

	mu struct {
		sync.Mutex
		subs     map[string]map[Sink]bool // channel → its subscribers
		byClient map[Sink]map[string]bool // subscriber → its channels
		running  bool                     // the hub goroutine runs
		closed   bool
		// ready is closed when a channel's LISTEN has been answered on
		// the connection open now; err then says whether it failed.
		ready map[string]*waiter
		wake  chan struct{}
	}
}

type waiter struct {
	once sync.Once
	done chan struct{}
	err  error
}

// New returns a hub; nothing starts until the first Subscribe.
func New(cfg Config) *Hub {
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg}
	h.ctx, h.stop = context.WithCancel(context.Background())
	h.mu.subs = make(map[string]map[Sink]bool)
	h.mu.byClient = make(map[Sink]map[string]bool)
	h.mu.ready = make(map[string]*waiter)
	h.mu.wake = make(chan struct{}, 1)
	return h
}

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("notify: the pool's listener is closed")

// Conns reports how many listening connections are open now (0 or 1).
func (h *Hub) Conns() int { return int(h.conns.Load()) }

// Channels reports how many channels are listened to for clients.
func (h *Hub) Channels() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.mu.subs)
}

// Subscribe adds c to channel's listeners and waits until the listening
// connection listens to it (at once when another client already made it
// so), so that, as after LISTEN, every notification committed later
// reaches c.
func (h *Hub) Subscribe(ctx context.Context, c Sink, channel string) error {
	h.mu.Lock()
	if h.mu.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	subs := h.mu.subs[channel]
	if subs == nil {
		subs = make(map[Sink]bool)
		h.mu.subs[channel] = subs
		h.mu.ready[channel] = &waiter{done: make(chan struct{})}
	}
	subs[c] = true
	mine := h.mu.byClient[c]
	if mine == nil {
		mine = make(map[string]bool)
		h.mu.byClient[c] = mine
	}
	mine[channel] = true
	w := h.mu.ready[channel]
	h.startLocked()
	h.wakeLocked()
	h.mu.Unlock()
	select {
	case <-w.done:
		if w.err != nil {
			h.Unsubscribe(c, channel)
		}
		return w.err
	case <-ctx.Done():
		h.Unsubscribe(c, channel)
		return context.Cause(ctx)
	}
}

// Unsubscribe takes c off channel's listeners ("*": off all of them).
func (h *Hub) Unsubscribe(c Sink, channel string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if channel == "*" {
		for ch := range h.mu.byClient[c] {
			h.dropLocked(c, ch)
		}
	} else {
		h.dropLocked(c, channel)
	}
	h.wakeLocked()
}

// UnsubscribeAll takes c off every channel, as when it leaves.
func (h *Hub) UnsubscribeAll(c Sink) { h.Unsubscribe(c, "*") }

// Listening reports whether c listens to any channel.
func (h *Hub) Listening(c Sink) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.mu.byClient[c]) > 0
}

func (h *Hub) dropLocked(c Sink, channel string) {
	if subs := h.mu.subs[channel]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(h.mu.subs, channel)
			delete(h.mu.ready, channel)
		}
	}
	if mine := h.mu.byClient[c]; mine != nil {
		delete(mine, channel)
		if len(mine) == 0 {
			delete(h.mu.byClient, c)
		}
	}
}

// Close ends the hub goroutine, closing the listening connection, and
// waits for it. Subscribers are left as they are: they get nothing more.
func (h *Hub) Close() {
	h.mu.Lock()
	h.mu.closed = true
	h.mu.Unlock()
	h.stop()
	h.wg.Wait()
}

func (h *Hub) startLocked() {
	if h.mu.running {
		return
	}
	h.mu.running = true
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.run()
	}()
}

func (h *Hub) wakeLocked() {
	select {
	case h.mu.wake <- struct{}{}:
	default:
	}
}

// deliver sends msg to every subscriber of channel.
func (h *Hub) deliver(channel string, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.mu.subs[channel] {
		c.Deliver(msg)
	}
}

// deliverAll sends msg once to every subscriber.
func (h *Hub) deliverAll(msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.mu.byClient {
		c.Deliver(msg)
	}
}

func (h *Hub) String() string { return fmt.Sprintf("listener of %s", h.cfg.Name) }
