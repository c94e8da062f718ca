package authquery

import (
	"context"
	"sync"
	"time"

	"github.com/pgvalve/pgvalve/internal/auth"
)

// Key is what an answer depends on: the user, and where and how it was
// looked up, so that a reload changing auth_user, auth_query or
// auth_dbname never serves an answer of the old settings.
type Key struct {
	Database, AuthUser, Query, User string
}

// Fetch looks one user up (Run, in pgvalve).
type Fetch func(ctx context.Context) (auth.Secret, bool, error)

// Cache remembers lookups for TTL: a user found, and a user not found
// (so a flood of logins under one unknown name costs one query per TTL).
// A failed lookup is not remembered. Concurrent lookups of one Key share
// one Fetch; it is cancelled once every caller waiting for it has gone.
// At most Max answers are kept: past it the expired go first, then any.
type Cache struct {
	TTL time.Duration
	Max int
	Now func() time.Time // time.Now unless a test sets it

	mu      sync.Mutex
	entries map[Key]*lookup
}

// lookup is one Fetch, in flight until done closes, then its answer.
type lookup struct {
	done    chan struct{}
	cancel  context.CancelFunc
	waiters int // callers waiting while in flight
	secret  auth.Secret
	found   bool
	err     error
	at      time.Time // when it finished
}

// NewCache returns an empty cache keeping answers for ttl, at most max.
func NewCache(ttl time.Duration, max int) *Cache {
	return &Cache{TTL: ttl, Max: max, Now: time.Now, entries: make(map[Key]*lookup)}
}

// Get returns key's answer: remembered if fresh, else from fetch, run
// once for every caller asking meanwhile. ctx bounds this caller's wait.
func (c *Cache) Get(ctx context.Context, key Key, fetch Fetch) (auth.Secret, bool, error) {
	c.mu.Lock()
	l, ok := c.entries[key]
	switch {
	case ok && l.finished() && c.Now().Sub(l.at) < c.TTL:
		c.mu.Unlock()
		return l.secret, l.found, nil
	case ok && !l.finished():
		l.waiters++
	default:
		l = c.startLocked(ctx, key, fetch)
	}
	c.mu.Unlock()
	select {
	case <-l.done:
		return l.secret, l.found, l.err
	case <-ctx.Done():
		c.leave(key, l)
		return auth.Secret{}, false, ctx.Err()
	}
}

func (l *lookup) finished() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// startLocked starts fetch for key in a goroutine of its own, so that it
// outlives the caller that started it while others wait for it. Its
// context keeps ctx's values but not its end: leave cancels it.
func (c *Cache) startLocked(ctx context.Context, key Key, fetch Fetch) *lookup {
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &lookup{done: make(chan struct{}), cancel: cancel, waiters: 1}
	c.makeRoomLocked()
	c.entries[key] = l
	go func() {
		secret, found, err := fetch(fctx)
		cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		l.secret, l.found, l.err, l.at = secret, found, err, c.Now()
		if err != nil && c.entries[key] == l {
			delete(c.entries, key) // the next login asks again
		}
		close(l.done)
	}()
	return l
}

// leave is a caller that stopped waiting for l; the last one cancels it.
func (c *Cache) leave(key Key, l *lookup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if l.finished() {
		return
	}
	if l.waiters--; l.waiters == 0 {
		l.cancel()
		if c.entries[key] == l {
			delete(c.entries, key)
		}
	}
}

// makeRoomLocked keeps the cache under Max: expired answers go first,
// then any answer; lookups in flight stay (they are bounded by logins).
func (c *Cache) makeRoomLocked() {
	if len(c.entries) < c.Max {
		return
	}
	now := c.Now()
	for k, l := range c.entries {
		if l.finished() && now.Sub(l.at) >= c.TTL {
			delete(c.entries, k)
		}
	}
	for k, l := range c.entries {
		if len(c.entries) < c.Max {
			return
		}
		if l.finished() {
			delete(c.entries, k)
		}
	}
}

// Len is how many answers and lookups in flight it holds.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
