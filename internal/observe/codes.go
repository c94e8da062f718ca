package observe

import (
	"sync"
	"sync/atomic"
)

// Codes counts errors by SQLSTATE. The codes are PostgreSQL's, a bounded
// set, so each is a fit label value. The zero value is ready to use; it is
// safe for concurrent use, and a nil *Codes counts nothing.
type Codes struct {
	m sync.Map // SQLSTATE -> *atomic.Int64
}

// Add counts one error with code; "" (no code) is not counted.
func (c *Codes) Add(code string) {
	if c == nil || code == "" {
		return
	}
	v, ok := c.m.Load(code)
	if !ok {
		v, _ = c.m.LoadOrStore(code, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Counts returns each code's count so far.
func (c *Codes) Counts() map[string]int64 {
	out := make(map[string]int64)
	if c == nil {
		return out
	}
	c.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}
