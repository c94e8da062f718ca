// Package cleanup holds what must be undone when a client connection
// ends, for connections that may outlive the goroutine that accepted
// them: an idle client parked without a goroutine (internal/park) ends on
// whichever goroutine later resumes it, and that goroutine runs what each
// layer above the relay would otherwise have deferred.
package cleanup

import "sync"

// Stack is a list of functions run once, last pushed first, like defers.
type Stack struct {
	mu  sync.Mutex
	fns []func()
	ran bool
	// first holds the first functions pushed, so that a connection's
	// stack (a handful) grows no slice.
	first [8]func()
}

// Push adds f, to run before everything pushed so far. Pushed after Run,
// f runs at once: nothing is left undone.
func (s *Stack) Push(f func()) {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		f()
		return
	}
	if s.fns == nil {
		s.fns = s.first[:0]
	}
	s.fns = append(s.fns, f)
	s.mu.Unlock()
}

// Run runs the functions, last pushed first; later calls do nothing. A
// panicking function does not stop the ones under it.
func (s *Stack) Run() {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return
	}
	s.ran = true
	fns := s.fns
	s.fns = nil
	s.mu.Unlock()
	runFrom(fns, len(fns)-1)
	clear(s.first[:]) // what they hold may be freed
}

func runFrom(fns []func(), i int) {
	for ; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					runFrom(fns, i-1)
					panic(r)
				}
			}()
			fns[i]()
		}()
	}
}
