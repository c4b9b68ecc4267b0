package groupcommit

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// disk models a file whose writes survive a power cut only once an fsync
// that began after them has returned.
type disk struct {
	mu       sync.Mutex
	written  int // writes made
	durable  int // writes a power cut now would keep
	inFlight bool
	fail     bool
}

func (d *disk) write() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.written++
	return d.written
}

func (d *disk) fsync() error {
	d.mu.Lock()
	if d.inFlight {
		d.mu.Unlock()
		return errors.New("two fsyncs at once: the leader did not keep the others waiting")
	}
	d.inFlight = true
	covers := d.written
	fail := d.fail
	d.mu.Unlock()
	time.Sleep(time.Millisecond) // long enough for others to write meanwhile
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inFlight = false
	if fail {
		return errors.New("EIO")
	}
	d.durable = covers
	return nil
}

func (d *disk) durableNow() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.durable
}

// TestNoWriteIsAcknowledgedBeforeItIsDurable: 16 appenders, 40 writes
// each; whenever Wait returns nil, a power cut at that instant keeps the
// write. The fsyncs are shared: far fewer than the writes.
func TestNoWriteIsAcknowledgedBeforeItIsDurable(t *testing.T) {
	d := &disk{}
	s := New(d.fsync)
	var order sync.Mutex // the appenders' own lock, ordering their writes
	const workers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				order.Lock()
				n := d.write()
				ticket := s.Wrote()
				order.Unlock()
				if err := s.Wait(ticket); err != nil {
					errs <- err
					return
				}
				if got := d.durableNow(); got < n {
					errs <- errors.New("acknowledged a write a power cut would lose")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := s.Syncs(); n >= workers*each/2 {
		t.Errorf("%d fsyncs for %d writes from %d appenders: not grouped", n, workers*each, workers)
	}
	t.Logf("%d writes, %d fsyncs", workers*each, s.Syncs())
}

// TestAFailedFsyncFailsEveryWaiterAndLaterWait: the writes a failed fsync
// covered are not acknowledged, and nothing after it is either.
func TestAFailedFsyncFailsEveryWaiterAndLaterWait(t *testing.T) {
	d := &disk{}
	s := New(d.fsync)
	if err := s.Wait(s.Wrote()); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.fail = true
	d.mu.Unlock()
	var wg sync.WaitGroup
	var failed sync.Map
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			failed.Store(w, s.Wait(s.Wrote()))
		}(w)
	}
	wg.Wait()
	for w := 0; w < 8; w++ {
		if err, _ := failed.Load(w); err == nil {
			t.Errorf("appender %d: acknowledged after a failed fsync", w)
		}
	}
	d.mu.Lock()
	d.fail = false
	d.mu.Unlock()
	if err := s.Wait(s.Wrote()); err == nil {
		t.Error("a write after a failed fsync was acknowledged")
	}
}
