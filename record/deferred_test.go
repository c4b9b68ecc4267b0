package record

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestWrittenEntriesAreDurableAtTheNextWait: 16 goroutines append signed
// entries as a bulk run's workers do with deferred durability: step
// entries with AppendWritten (returns once written), an intent now and
// then with Append, and Sync before the work is reported. When Append or
// Sync returns, a power cut at that instant keeps that entry and every
// entry the goroutine wrote before it. A power cut right after an
// AppendWritten (its fsync not yet awaited) leaves a record of whole lines
// that verifies, signatures and chain, with every entry acknowledged by
// then. A failed fsync fails the next wait and every later append.
func TestWrittenEntriesAreDurableAtTheNextWait(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w := openTest(t, path, key)
	pc := modelPowerCuts(w)
	const workers, each = 16, 12
	var ackMu sync.Mutex
	acked := map[int64]int64{} // Seq -> bytes a power cut kept when it was acknowledged
	var cutOnce sync.Once
	var cut []byte
	var cutAcked []int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var written []int64
			acknowledge := func() {
				kept := pc.Durable()
				ackMu.Lock()
				for _, s := range written {
					acked[s] = kept
				}
				ackMu.Unlock()
				written = nil
			}
			for i := 0; i < each; i++ {
				e := sampleEntry(i)
				e.Step = fmt.Sprintf("worker-%d-step-%d", g, i)
				var got Entry
				var err error
				if i%4 == 3 { // an intent: durable before its change
					got, err = w.Append(e)
				} else {
					got, err = w.AppendWritten(e)
				}
				if err != nil {
					errs <- err
					return
				}
				written = append(written, got.Seq)
				if i%4 == 3 {
					acknowledge()
				} else if g == 5 && i == 6 {
					cutOnce.Do(func() {
						data, err := os.ReadFile(path)
						if err == nil {
							cut = data[:pc.Durable()]
						}
						ackMu.Lock()
						for s := range acked {
							cutAcked = append(cutAcked, s)
						}
						ackMu.Unlock()
					})
				}
			}
			if err := w.Sync(); err != nil {
				errs <- err
				return
			}
			acknowledge()
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ls := lines(t, path)
	if len(ls) != workers*each {
		t.Fatalf("%d lines, want %d", len(ls), workers*each)
	}
	var end int64
	for i, l := range ls {
		end += int64(len(l)) + 1
		if kept, ok := acked[int64(i+1)]; !ok {
			t.Errorf("seq %d: written, never acknowledged", i+1)
		} else if end > kept {
			t.Errorf("seq %d: acknowledged when a power cut would have kept %d bytes; its line ends at %d", i+1, kept, end)
		}
	}
	t.Logf("%d entries, %d fsyncs", workers*each, pc.Syncs())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	if cut == nil {
		t.Fatal("no power cut was taken")
	}
	rep, err := Verify(bytes.NewReader(cut), &key.PublicKey)
	if err != nil || !rep.OK() {
		t.Fatalf("the record a power cut after a deferred append leaves does not verify: %v %v", err, rep)
	}
	for _, s := range cutAcked {
		if s > int64(rep.Count) {
			t.Errorf("entry %d was acknowledged before the power cut, but the record it left has %d entries", s, rep.Count)
		}
	}
	t.Logf("the power cut kept %d entries; %d acknowledged by then", rep.Count, len(cutAcked))
}

// TestAFailedDeferredFsyncFailsTheNextWait: an AppendWritten whose fsync
// fails is reported by the next Sync (or Append), and nothing is appended
// after it; Close reports it too.
func TestAFailedDeferredFsyncFailsTheNextWait(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), nil)
	w.mu.Lock()
	w.syncHook, w.commit = func(*os.File) error { return fmt.Errorf("EIO") }, nil
	w.mu.Unlock()
	if _, err := w.AppendWritten(sampleEntry(1)); err != nil {
		t.Fatalf("AppendWritten: %v", err)
	}
	if err := w.Sync(); err == nil {
		t.Fatal("Sync returned nil after the fsync failed")
	}
	if _, err := w.AppendWritten(sampleEntry(2)); err == nil {
		t.Error("an append after a failed fsync was accepted")
	}
	if err := w.Close(); err == nil {
		t.Error("Close returned nil after a failed fsync")
	}
}
