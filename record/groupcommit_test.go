package record

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/groupcommit/groupcommittest"
)

// modelPowerCuts makes w's fsyncs go through a PowerCut, which it returns
// (the journal's tests do the same with theirs).
func modelPowerCuts(w *Writer) *groupcommittest.PowerCut {
	pc := &groupcommittest.PowerCut{}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.syncHook, w.commit = pc.Sync, nil
	return pc
}

// TestConcurrentAppendsShareFsyncsAndAcknowledgeOnlyDurableEntries: 16
// goroutines append signed entries at once, as a bulk run's workers do.
// Every Append that returns is durable at that instant (a power cut then
// keeps it); the record verifies, signatures and chain; each goroutine's
// entries are in its own order; and the fsyncs are shared.
func TestConcurrentAppendsShareFsyncsAndAcknowledgeOnlyDurableEntries(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w := openTest(t, path, key)
	pc := modelPowerCuts(w)
	const workers, each = 16, 12
	var ackMu sync.Mutex
	acked := map[int64]int64{} // Seq -> bytes a power cut kept when Append returned
	stepSeq := map[string]int64{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				e := sampleEntry(i)
				e.Step = fmt.Sprintf("worker-%d-step-%d", g, i)
				got, err := w.Append(e)
				if err != nil {
					errs <- err
					return
				}
				kept := pc.Durable()
				ackMu.Lock()
				acked[got.Seq], stepSeq[e.Step] = kept, got.Seq
				ackMu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
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
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Verify(f, &key.PublicKey)
	if err != nil || !rep.OK() {
		t.Fatalf("the record does not verify: %v %v", err, rep)
	}
	for g := 0; g < workers; g++ {
		for i := 1; i < each; i++ {
			a, b := stepSeq[fmt.Sprintf("worker-%d-step-%d", g, i-1)], stepSeq[fmt.Sprintf("worker-%d-step-%d", g, i)]
			if a >= b {
				t.Errorf("worker %d: step %d is entry %d, step %d entry %d: out of the worker's order", g, i-1, a, i, b)
			}
		}
	}
	// Grouped: well under one fsync per entry (a count, not a time; the
	// margin holds on a loaded machine, where signing slows appends).
	if pc.Syncs()*4 >= workers*each*3 {
		t.Errorf("%d fsyncs for %d entries from %d goroutines: appends were not grouped", pc.Syncs(), workers*each, workers)
	}
	t.Logf("%d entries, %d fsyncs", workers*each, pc.Syncs())
}

// TestAFailedFsyncIsNotAcknowledged: an entry whose fsync failed is not
// returned as written, and nothing is appended after it.
func TestAFailedFsyncIsNotAcknowledged(t *testing.T) {
	w := openTest(t, filepath.Join(t.TempDir(), "r.jsonl"), nil)
	defer w.Close()
	w.mu.Lock()
	w.syncHook, w.commit = func(*os.File) error { return fmt.Errorf("EIO") }, nil
	w.mu.Unlock()
	if _, err := w.Append(sampleEntry(1)); err == nil {
		t.Fatal("Append returned nil after its fsync failed")
	}
	if _, err := w.Append(sampleEntry(2)); err == nil {
		t.Error("an append after a failed fsync was acknowledged")
	}
}
