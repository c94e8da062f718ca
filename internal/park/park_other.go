//go:build !linux

package park

import (
	"errors"
	"time"
)

// Lot needs epoll; elsewhere Open fails and clients never park.
type Lot struct{}

// ErrClosed is returned by Wait once the Lot is closed.
var ErrClosed = errors.New("park: lot closed")

// Open fails: parking needs Linux's epoll.
func Open(func(), time.Duration) (*Lot, error) {
	return nil, errors.New("park: idle clients park only on Linux")
}

func (l *Lot) Wait(int, func()) error { return ErrClosed }
func (l *Lot) Forget(int)             {}
func (l *Lot) Parked() int            { return 0 }
func (l *Lot) Parks() uint64          { return 0 }
func (l *Lot) Close()                 {}
