// Package groupcommit shares one fsync among appenders that write to one
// file at the same time, without acknowledging any write before it is
// durable.
//
// An appender writes its bytes (under its own lock, so that the file's
// order is the order of the tickets), takes a ticket with Wrote, lets go
// of its lock and calls Wait. Wait returns only once an fsync that began
// after the appender's write completed has returned: the first waiter to
// find no fsync running leads one, covering every write made so far; the
// others wait for it, and those whose writes came after it began lead the
// next. With one appender this is one write and one fsync per entry, as
// before; with sixteen, the writes made while one fsync runs share the
// next.
//
// A failed fsync fails every write it covered and every later Wait: after
// a failed fsync the kernel may have dropped the dirty pages, so nothing
// written since can be called durable.
package groupcommit

import "sync"

// Syncer counts the writes to one file and makes them durable in groups.
// Its zero value is not usable: make one with New.
type Syncer struct {
	sync func() error

	mu      sync.Mutex
	cond    *sync.Cond
	written uint64 // tickets handed out: writes completed
	synced  uint64 // every ticket up to this one is durable
	syncing bool   // a leader's fsync is running
	err     error  // the first fsync failure, for every later Wait

	syncs uint64 // fsyncs made, for tests and benchmarks
}

// New returns a Syncer that makes writes durable with sync (the file's
// fsync).
func New(fsync func() error) *Syncer {
	s := &Syncer{sync: fsync}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Wrote records a write that has completed and returns its ticket for
// Wait. Callers call it while still holding the lock that orders their
// writes, so tickets follow the file's order.
func (s *Syncer) Wrote() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written++
	return s.written
}

// Wait returns nil once the write of ticket is durable: an fsync that
// began after it was written has succeeded. It leads that fsync when none
// is running. It returns the fsync's error when the one covering ticket,
// or any earlier one, failed.
func (s *Syncer) Wait(ticket uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.err != nil {
			return s.err
		}
		if s.synced >= ticket {
			return nil
		}
		if s.syncing {
			s.cond.Wait()
			continue
		}
		// Lead: every write with a ticket up to target completed before
		// this fsync begins, so it covers them all.
		s.syncing = true
		target := s.written
		s.mu.Unlock()
		err := s.sync()
		s.mu.Lock()
		s.syncing = false
		s.syncs++
		if err != nil {
			s.err = err
		} else {
			s.synced = target
		}
		s.cond.Broadcast()
	}
}

// Latest is the ticket of the last write recorded: Wait(Latest()) makes
// every write made so far durable.
func (s *Syncer) Latest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written
}

// Syncs is the number of fsyncs made so far.
func (s *Syncer) Syncs() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}
