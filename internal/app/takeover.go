package app

import (
	"context"
	"errors"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgvalve/pgvalve/internal/cancel"
	"github.com/pgvalve/pgvalve/internal/cleanup"
	"github.com/pgvalve/pgvalve/internal/frontend"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// Online restart, the app's part (cmd/pgvalve/takeover.go runs the
// conversation): the old process hands its clients over as each reaches
// a safe point (HandOver), the new one carries them on (Adopt).

// handOverTick is how often HandOver asks the clients still here to go:
// one that logged in since, or whose transaction ended, goes at its next.
const handOverTick = 20 * time.Millisecond

// HandOver stops accepting (the listeners now serve the new process) and
// gives send every client that can go, at its next safe point; the rest
// end as in Shutdown. When ctx ends first, those left are closed. It
// returns once Serve has, with how many clients went and how many ended
// here.
func (a *App) HandOver(ctx context.Context, send session.HandOffFunc) (went, ended int) {
	var sent atomic.Int64
	a.env.SetHandOff(func(conn net.Conn, h *session.Handoff) error {
		if err := send(conn, h); err != nil {
			return err
		}
		sent.Add(1)
		return nil
	})
	a.stopAccepting()
	a.log.Info("no longer accepting: each client goes to the new process at its next safe point")
	seen := map[*session.Status]bool{}
	tick := time.NewTicker(handOverTick)
	defer tick.Stop()
	for left := a.clients.statuses(nil); len(left) > 0; left = a.clients.statuses(nil) {
		for _, st := range left {
			seen[st] = true
			st.Drain() // again each tick: one still logging in had no session before
		}
		select {
		case <-ctx.Done():
			a.log.Warn("shutdown timeout: closing the clients not handed over", "left", len(left))
			a.Close()
			return int(sent.Load()), len(seen) - int(sent.Load())
		case <-tick.C:
		}
	}
	a.Shutdown(ctx)
	return int(sent.Load()), len(seen) - int(sent.Load())
}

// Cancels is the registry of the cancel keys this process gave out: an
// online restart passes to the old process the cancel requests for its
// clients that have not come over yet.
func (a *App) Cancels() *cancel.Registry { return a.env.Cancels }

// adoptions tracks the clients Adopt carries on, which no accept loop
// does: Serve waits for them before it closes the pools.
type adoptions struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// add counts one more, unless Serve is ending.
func (ad *adoptions) add() bool {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.closed {
		return false
	}
	ad.wg.Add(1)
	return true
}

// wait refuses more and waits for those counted.
func (ad *adoptions) wait() {
	ad.mu.Lock()
	ad.closed = true
	ad.mu.Unlock()
	ad.wg.Wait()
}

// Adopt carries on a client another pgvalve process handed over, on conn
// (this process's own copy), as if it had logged in here. A client whose
// route is gone, or that finds no room under max_client_conn, is told so
// and closed.
func (a *App) Adopt(conn net.Conn, h *session.Handoff) {
	select {
	case <-a.started:
	case <-a.served:
	}
	if a.accepting.Err() != nil || !a.adopting.add() {
		a.env.Fatal(conn, reason.ShuttingDown)
		conn.Close()
		return
	}
	ends := new(cleanup.Stack)
	ends.Push(a.adopting.wg.Done)
	ends.Push(func() { _ = conn.Close() })
	tk := a.gate.Enter(frontend.HostOf(h.Remote), func() { _ = conn.Close() })
	if tk == nil {
		a.env.Fatal(conn, reason.TooManyClients)
		ends.Run()
		return
	}
	ends.Push(tk.Done)
	tk.Talking()
	st, ctx, unlist := a.clients.add(a.sessions, conn, h.Remote)
	ends.Push(unlist)
	go a.carryOn(ctx, conn, h, st, tk.Admit(int(a.maxClients.Load())), ends)
}

// carryOn runs an adopted client's session until it ends or parks.
func (a *App) carryOn(ctx context.Context, conn net.Conn, h *session.Handoff, st *session.Status, admitted bool, ends *cleanup.Stack) {
	parked := false
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("session panic", "panic", r, "stack", string(debug.Stack()))
			a.env.Fatal(conn, reason.Panic)
		}
		if !parked {
			ends.Run()
		}
	}()
	if !admitted {
		a.env.Fatal(conn, reason.TooManyClients)
		return
	}
	route, ok := a.front.Lookup(h.Database, h.User)
	if !ok {
		a.env.Fatal(conn, reason.NoSuchDatabase, h.Database)
		return
	}
	if route.Leave != nil {
		ends.Push(route.Leave)
	}
	st.SetLogin(session.LoginOf(h.User, h.Database, h.Params))
	sock := wire.NewSocket(conn)
	c := session.Client{Conn: conn, Sock: sock, Reader: wire.NewReader(sock, wire.DefaultBufferSize, a.env.Live().MaxMessageSize),
		Remote: h.Remote, User: h.User, Database: h.Database, Route: route, Params: h.Params, Status: st, Ends: ends}
	err := session.Adopt(ctx, a.env, c, h)
	parked = errors.Is(err, session.ErrParked)
	if err != nil && !parked {
		a.log.Debug("adopted session ended", "client", h.Remote, "err", err)
	}
}
