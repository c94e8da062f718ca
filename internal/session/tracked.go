package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgvalve/pgvalve/internal/stmt"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// flush is a Flush message: it makes the server send what it has
// answered so far, for a batch that waits for those answers.
var flush = []byte{'H', 0, 0, 0, 4}

// forwardTracked sends a batch through the statement tracker, which turns
// the client's statement names into the linked server's and prepares there
// what it lacks. A message whose rewrite needs the server's answers first
// (stmt.ErrWait) splits the batch: what comes before it goes with a Flush,
// and the rest waits until everything sent is answered.
func (s *Session) forwardTracked(ctx context.Context, l *link, span []byte, last byte) error {
	frames, base, idle := s.frames, 0, false
	for {
		waiting, cut, err := s.sendSegment(l, span, frames, base, last, &idle)
		if err != nil || !waiting {
			if errors.Is(err, errDetached) && base > 0 {
				err = fmt.Errorf("%w: the server went back to its pool in the middle of a batch", errServerLost)
			}
			return err
		}
		end := frames[cut].Off
		if err := s.awaitAnswers(ctx, l); err != nil {
			// The server went while the rest waited: its requests are owed
			// an answer too (recoverLost), though none of it was sent.
			rest, _ := s.counts(frames[cut:])
			s.mu.Lock()
			s.mu.st.forwarded(rest, last, s.rd.Streaming() != 0)
			s.mu.Unlock()
			return err
		}
		frames, base = frames[cut:], end
	}
}

// sendSegment rewrites frames (their span starts at base) and sends them,
// up to one that must wait for answers (waiting, at index cut), with a
// Flush then. The rewrite and the booking happen under one lock, after
// checking that l is still the client's (errDetached).
func (s *Session) sendSegment(l *link, span []byte, frames []wire.Frame, base int, last byte, idle *bool) (waiting bool, cut int, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	seg, err := s.bookSegment(l, span, frames, base, last)
	if err != nil {
		return false, 0, err
	}
	waiting, cut, end, nudge := seg.waiting, seg.cut, seg.end, seg.nudge
	out := s.tr.ApplyBatch(span[base:end])
	if waiting && len(out) == 0 {
		if *idle {
			// It waited, got every answer, and waits again with nothing
			// new sent: it would wait forever.
			return false, 0, &protocolViolation{err: errNothingAwaited}
		}
		*idle = true
	} else {
		*idle = false
	}
	if waiting {
		s.waitBuf = append(append(s.waitBuf[:0], out...), flush...)
		out = s.waitBuf
	}
	return waiting, cut, s.write(l, out, nudge)
}

// segment is what bookSegment decided for a part of a batch.
type segment struct {
	waiting  bool // it ends before frames[cut], which waits for answers
	cut, end int  // frames[:cut] go, up to end in the span
	nudge    bool // see bookLocked
}

// bookSegment rewrites frames and books what goes, under s.mu. The unlock
// is deferred: a panic in the tracker or the detector must not leave s.mu
// held, since ending the session takes it again.
func (s *Session) bookSegment(l *link, span []byte, frames []wire.Frame, base int, last byte) (seg segment, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.cur != l {
		return seg, errDetached
	}
	if k := s.env.Knobs; k != nil && k.UnderLock != nil {
		k.UnderLock(span)
	}
	seg.cut, err = s.rewrite(frames, base)
	seg.waiting = errors.Is(err, stmt.ErrWait)
	if (err == nil || seg.waiting) && s.detect {
		s.notePinsLocked(frames[:seg.cut])
	}
	if err != nil && !seg.waiting {
		return seg, &protocolViolation{err: err}
	}
	segLast, partial := last, s.rd.Streaming() != 0
	seg.end = len(span)
	s.partialSent = partial
	if seg.waiting {
		seg.end, segLast, partial = frames[seg.cut].Off, 0, true
		s.partialSent = false
	}
	types, requests := s.counts(frames[:seg.cut])
	seg.nudge = s.bookLocked(types, requests, segLast, partial)
	return seg, nil
}

// rewrite offers frames, whose span starts at base in the batch, to the
// tracker until one must wait (its index and stmt.ErrWait) or all are
// rewritten. The caller holds s.mu.
func (s *Session) rewrite(frames []wire.Frame, base int) (int, error) {
	s.tr.BeginBatch()
	skip := s.env.Knobs != nil && s.env.Knobs.SkipStreamedBookkeeping
	for i, f := range frames {
		if skip && f.Body == nil {
			continue // the defect the knob brings back
		}
		if err := s.tr.Client(f.Type, f.Body, f.Off-base, f.Total()); err != nil {
			return i, err
		}
	}
	return len(frames), nil
}

// counts are the message types txState counts among frames, and the
// requests that want a ReadyForQuery.
func (s *Session) counts(frames []wire.Frame) (types []byte, requests int) {
	s.segTypes = s.segTypes[:0]
	for _, f := range frames {
		if counted(f.Type) {
			s.segTypes = append(s.segTypes, f.Type)
		}
		if _, wants := requestEnds(f.Type); wants {
			requests++
		}
	}
	return s.segTypes, requests
}

// errNothingAwaited means the tracker asked to wait again with nothing
// new sent to wait for: a defect, or waiting would never end.
var errNothingAwaited = errors.New("statement tracker waits for no answer")

// awaitAnswers waits until the server has answered everything sent on l.
func (s *Session) awaitAnswers(ctx context.Context, l *link) error {
	s.mu.Lock()
	if s.tr.Pending() == 0 {
		s.mu.Unlock()
		return nil // all in already
	}
	answered := make(chan struct{})
	s.mu.answered = answered
	s.mu.Unlock()
	select {
	case <-answered:
		return nil
	case <-l.done:
		if l.err != nil {
			return l.err
		}
		return fmt.Errorf("%w: the server side stopped", errServerLost)
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// answeredLocked wakes a client side waiting for every answer, once they
// are in. The caller holds s.mu.
func (s *Session) answeredLocked() {
	if s.mu.answered != nil && s.tr.Pending() == 0 {
		close(s.mu.answered)
		s.mu.answered = nil
	}
}

// violationGrace bounds how long a client that broke the protocol waits
// for the answers to what it sent before, as PostgreSQL would answer them.
const violationGrace = 5 * time.Second

// awaitIdle waits until every request forwarded on the client's server is
// answered and relayed, the server side ends, or violationGrace passes.
func (s *Session) awaitIdle(ctx context.Context) {
	s.mu.Lock()
	l := s.mu.cur
	if l == nil {
		s.mu.Unlock()
		return // a detached server side's answers are awaited by reclaim
	}
	s.idleWanted.Store(true) // before owed is loaded: see deliver
	if s.mu.st.pending == 0 && !s.owed.Load() {
		s.idleWanted.Store(false)
		s.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	s.mu.allAnswered = idle
	s.mu.Unlock()
	defer s.idleWanted.Store(false)
	t := time.NewTimer(violationGrace)
	defer t.Stop()
	select {
	case <-idle:
	case <-l.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// answeredAllLocked wakes awaitIdle once no request awaits its answer
// and the answers went to the client. The caller holds s.mu.
func (s *Session) answeredAllLocked() {
	if s.mu.allAnswered != nil && s.mu.st.pending == 0 && !s.owed.Load() {
		close(s.mu.allAnswered)
		s.mu.allAnswered = nil
	}
}
