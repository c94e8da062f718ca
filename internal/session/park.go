package session

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgvalve/pgvalve/internal/cleanup"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/park"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Parking (issue 14): a client idle for client_park_delay, holding no
// server, with nothing half-read, leaves its goroutine and waits in the
// app's park.Lot instead. Whatever would have woken its read (the client
// speaking or hanging up, a drain, a kill, client_idle_timeout) resumes it
// on a new goroutine, which reads and carries on exactly where the old one
// stopped: the session's state lives in the Session, not on a stack.
//
// How a client gets there: the lot's tick asks each client idle long
// enough (Status.AskPark); one waiting in readClient is woken with a past
// read deadline, sees that it was asked, and parks if it still can. Only
// plain sockets park (a TLS connection may hold decrypted bytes that no
// poll of its socket would show).

// ErrParked is what Run returns when the client was parked: the goroutine
// that called Run is free, and the client's ends (Client.Ends) run later,
// when it ends on another goroutine.
var ErrParked = errors.New("session: client parked while idle")

// errParked: the client side stopped to park; proceed parks it.
var errParked = errors.New("client side stopped to park")

const (
	running int32 = iota
	parked
)

// parking is a session's side of park.Lot.
type parking struct {
	lot  *park.Lot // nil: this client never parks
	fd   int
	ends *cleanup.Stack
	ctx  context.Context

	state atomic.Int32
	// wakes counts wakeClient calls, so a wake that comes while the client
	// side is parking is never lost.
	wakes atomic.Uint64
	// want: the lot's tick found the client idle long enough.
	want atomic.Bool
	// timer wakes a parked client when client_idle_timeout is due.
	timer *time.Timer

	// mu orders readClient's wait with AskPark's wake-up, so a past read
	// deadline never outlives the wait it was meant to end (a later peek
	// of the socket would fail on it).
	mu       sync.Mutex
	reading  bool
	deadline time.Time // the read deadline readClient set
}

// preparePark makes the client able to park, when the app has a lot, the
// caller handed over its ends, and the client is on a plain socket in
// transaction or statement pooling.
func (s *Session) preparePark(ctx context.Context, ends *cleanup.Stack) {
	lot := s.env.Lot
	if lot == nil || ends == nil || s.route.Mode == config.PoolSession {
		return
	}
	if _, ok := s.sock.(*wire.Socket); !ok {
		return
	}
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	fd := -1
	if raw.Control(func(f uintptr) { fd = int(f) }) != nil || fd < 0 {
		return
	}
	// A kill or a hard stop reaches a parked client through its Status
	// (whoever ends ctx then calls frontend.Wake, which calls Status.Wake).
	s.pk.lot, s.pk.fd, s.pk.ends, s.pk.ctx = lot, fd, ends, ctx
}

// wakeClient ends the client side's wait for the client: a past read
// deadline, or, for a parked client, its resumption.
func (s *Session) wakeClient() {
	s.pk.wakes.Add(1)
	if s.pk.state.Load() == parked {
		s.unpark()
		return
	}
	_ = s.conn.SetReadDeadline(time.Unix(1, 0))
}

// askPark wakes a client side waiting for its client so that it parks.
func (s *Session) askPark() {
	pk := &s.pk
	if pk.lot == nil {
		return // this client never parks
	}
	pk.mu.Lock()
	defer pk.mu.Unlock()
	if pk.reading && !pk.want.Load() {
		pk.want.Store(true)
		_ = s.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// setReadDeadline sets the client's read deadline for readClient's wait.
func (s *Session) setReadDeadline(t time.Time) {
	s.pk.deadline = t
	_ = s.conn.SetReadDeadline(t)
}

// fill reads more client input for readClient, marked as a wait AskPark
// may end.
func (s *Session) fill() error {
	pk := &s.pk
	if pk.lot == nil {
		return s.rd.Fill()
	}
	pk.mu.Lock()
	pk.reading = true
	pk.mu.Unlock()
	err := s.rd.Fill()
	pk.mu.Lock()
	pk.reading = false
	if err == nil && pk.want.Swap(false) {
		// Asked to park just as the client spoke: undo the wake-up.
		_ = s.conn.SetReadDeadline(pk.deadline)
	}
	pk.mu.Unlock()
	return err
}

// wantsPark reports whether the client side, woken from its wait, was
// asked to park and can.
func (s *Session) wantsPark() bool {
	if !s.pk.want.Swap(false) {
		return false
	}
	return s.rd.Buffered() == 0 && !s.rd.InMessage() && s.skip == 0 && !s.partialSent && s.current() == nil
}

// park hands the client to the lot. true: it is parked, and the goroutine
// that wakes it carries on (the caller must not touch the session again);
// false: it was woken meanwhile, and the caller carries on.
func (s *Session) park() bool {
	s.reclaim() // the last server side has ended
	s.shed()
	pk := &s.pk
	wakes := pk.wakes.Load()
	if d, _ := s.idleDeadline(time.Now(), s.env.Live()); !d.IsZero() {
		pk.timer = time.AfterFunc(time.Until(d), s.wakeClient)
	}
	pk.state.Store(parked)
	if err := pk.lot.Wait(pk.fd, s.unpark); err != nil {
		pk.state.Store(running)
		s.unparked()
		return false
	}
	if pk.wakes.Load() != wakes && pk.state.CompareAndSwap(parked, running) {
		pk.lot.Forget(pk.fd)
		s.unparked()
		return false
	}
	return true
}

// shed drops the scratch space the client side grew for the batches it
// relayed; a parked client keeps only its state.
func (s *Session) shed() {
	s.rd.Release() // nothing is unread: wantsPark checked
	s.scratch = nil
	if s.tr != nil {
		s.mu.Lock()
		s.tr.Shed()
		s.mu.Unlock()
	}
	if v := s.view; v != nil {
		// Made again by the next attach (wantKey "" says so).
		v.wantKey, v.want, v.edits = "", nil, wire.Edits{}
	}
}

// unpark resumes a parked client on a new goroutine; only the first of
// several wake-ups does.
func (s *Session) unpark() {
	if !s.pk.state.CompareAndSwap(parked, running) {
		return
	}
	s.pk.lot.Forget(s.pk.fd)
	s.unparked() // before the go statement: resume sees it
	go s.resume()
}

// unparked undoes park's preparations for a client running again: its
// idle timer stops and the client side gets scratch space back.
func (s *Session) unparked() {
	if t := s.pk.timer; t != nil {
		t.Stop()
		s.pk.timer = nil
	}
	s.scratch = new(scratch)
}

// resume carries a woken client on from its wait, until it ends or parks
// again. A panic ends only this client, as the front door's recovery does
// for one that never parked.
func (s *Session) resume() {
	parked := false
	defer func() {
		if r := recover(); r != nil {
			s.log().Error("session panic", "panic", r, "stack", string(debug.Stack()))
			s.env.Fatal(s.conn, reason.Panic)
		}
		if !parked {
			s.pk.ends.Run()
		}
	}()
	err := s.proceed(s.pk.ctx, s.carryOn)
	parked = errors.Is(err, ErrParked)
	if err != nil && !parked {
		s.log().Debug("session ended", "err", err)
	}
}

// carryOn reads what woke the client and goes on relaying.
func (s *Session) carryOn(ctx context.Context) error {
	if err := s.readClient(ctx, true); err != nil {
		return err
	}
	return s.clientSide(ctx)
}
