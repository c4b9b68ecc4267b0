package record

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hookSigner signs with key, calling hook (when set) first with the
// 1-based number of the call; an error from hook fails the signature.
type hookSigner struct {
	key   *ecdsa.PrivateKey
	calls atomic.Int64
	hook  func(call int64) error
}

func (s *hookSigner) Public() crypto.PublicKey { return &s.key.PublicKey }
func (s *hookSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	n := s.calls.Add(1)
	if s.hook != nil {
		if err := s.hook(n); err != nil {
			return nil, err
		}
	}
	return s.key.Sign(r, d, o)
}

// TestEntriesAreSignedBesideEachOther: appends from several goroutines
// have their signatures made at the same time (the audit key in a token
// signs on a session per signature), not one after the other under the
// writer's lock: while the first signature is under way, the entries
// chained after it are signed. The record then verifies, in the order the
// entries were chained. Signing under the lock would leave the first
// signature waiting alone, and the test fails at its timeout.
func TestEntriesAreSignedBesideEachOther(t *testing.T) {
	const others = 8
	var begunDuring atomic.Int64
	var firstDone atomic.Bool
	reached := make(chan struct{})
	s := &hookSigner{key: newKey(t)}
	s.hook = func(call int64) error {
		if call == 1 {
			defer firstDone.Store(true)
			select {
			case <-reached:
				return nil
			case <-time.After(20 * time.Second):
				return fmt.Errorf("no other signature began while this one was under way")
			}
		}
		if !firstDone.Load() && begunDuring.Add(1) == others {
			close(reached)
		}
		return nil
	}
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w, err := Open(path, s, []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 16, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e := sampleEntry(i)
				e.Step = fmt.Sprintf("worker-%d-step-%d", g, i)
				if _, err := w.Append(e); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	w.Close()
	if n := begunDuring.Load(); n < others {
		t.Errorf("%d signatures began while the first was under way, want %d", n, others)
	}
	b, _ := os.ReadFile(path)
	if rep, err := Verify(bytes.NewReader(b), &s.key.PublicKey); err != nil || rep.Count != workers*each {
		t.Fatalf("record: %v\n%s", err, rep)
	}
}

// TestAFailedSignatureLeavesNoGap: entry A's signature fails after entry B
// was chained to A and signed. A is not written and its Append fails; B,
// in its turn, is chained again to the entry before A, signed again and
// written as the next Seq; the record has no gap and verifies, and the
// next Append follows B.
func TestAFailedSignatureLeavesNoGap(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "r.jsonl")
	s := &hookSigner{key: key}
	inA, releaseA, signedB := make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.hook = func(call int64) error {
		switch call {
		case 2: // A
			close(inA)
			<-releaseA
			return errors.New("C_Sign: CKR_DEVICE_ERROR (0x30)")
		case 3: // B, chained after A
			defer close(signedB)
		}
		return nil
	}
	w, err := Open(path, s, []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	w.Now = testClock()
	first, err := w.Append(sampleEntry(1))
	if err != nil {
		t.Fatal(err)
	}
	aErr, bDone := make(chan error, 1), make(chan Entry, 1)
	go func() { _, err := w.Append(sampleEntry(2)); aErr <- err }()
	<-inA
	go func() {
		e, err := w.Append(sampleEntry(3))
		if err != nil {
			t.Error(err)
		}
		bDone <- e
	}()
	<-signedB
	select {
	case <-bDone:
		t.Fatal("B was written before A, which was chained before it, was done")
	case <-time.After(50 * time.Millisecond):
	}
	close(releaseA)
	if err := <-aErr; err == nil {
		t.Fatal("A's Append succeeded although its signature failed")
	}
	b := <-bDone
	if b.Seq != 2 || b.Prev != entryHash(lines(t, path)[0]) {
		t.Errorf("B is Seq %d Prev %s, want Seq 2 chained to entry %d", b.Seq, b.Prev, first.Seq)
	}
	c, err := w.Append(sampleEntry(4))
	if err != nil || c.Seq != 3 {
		t.Fatalf("the append after: Seq %d, %v", c.Seq, err)
	}
	if calls := s.calls.Load(); calls != 5 {
		t.Errorf("%d signatures, want 5 (1, A, B, B again, C)", calls)
	}
	w.Close()
	data, _ := os.ReadFile(path)
	if rep, err := Verify(bytes.NewReader(data), &key.PublicKey); err != nil || rep.Count != 3 {
		t.Fatalf("record: %v\n%s", err, rep)
	}
	if bytes.Contains(data, []byte(`"step-2"`)) {
		t.Error("A, whose signature failed, was written")
	}
}

// TestLinesSignedWhileAnEarlierOneIsSigningGoOutTogether: while entry 1
// is being signed, entries 2 to 8 are chained after it and signed; none is
// written before entry 1 (the file stays in Seq order), and once it is
// signed the eight lines go out together (one flush, one fsync).
func TestLinesSignedWhileAnEarlierOneIsSigningGoOutTogether(t *testing.T) {
	key := newKey(t)
	s := &hookSigner{key: key}
	inFirst, release := make(chan struct{}), make(chan struct{})
	var signedLater atomic.Int64
	s.hook = func(call int64) error {
		if call == 1 {
			close(inFirst)
			<-release
		} else {
			signedLater.Add(1)
		}
		return nil
	}
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w, err := Open(path, s, []byte{1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := w.Append(sampleEntry(1)); err != nil {
			t.Error(err)
		}
	}()
	<-inFirst
	for i := 2; i <= 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Append(sampleEntry(i)); err != nil {
				t.Error(err)
			}
		}()
	}
	// Wait until entries 2 to 8 are signed and waiting to be written.
	ready := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, sl := range w.slots {
			if sl.ready {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); ready() < 7 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := signedLater.Load(); n != 7 {
		t.Fatalf("%d entries signed while entry 1 was, want 7", n)
	}
	w.mu.Lock()
	early := w.writes
	w.mu.Unlock()
	if b, _ := os.ReadFile(path); len(b) != 0 || early != 0 {
		t.Fatalf("%d writes (%d bytes) while entry 1 was still being signed", early, len(b))
	}
	close(release)
	wg.Wait()
	if w.writes != 1 {
		t.Errorf("%d write(2) calls for 8 lines ready at once, want 1", w.writes)
	}
	data, _ := os.ReadFile(path)
	if rep, err := Verify(bytes.NewReader(data), &key.PublicKey); err != nil || rep.Count != 8 {
		t.Fatalf("record: %v\n%s", err, rep)
	}
}
