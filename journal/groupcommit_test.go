package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/groupcommit/groupcommittest"
)

// modelPowerCuts makes j's fsyncs go through pc.
func modelPowerCuts(j *Journal, pc *groupcommittest.PowerCut) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.syncHook, j.commit = pc.Sync, nil
}

// lineEnds is the offset just past each entry's line, by kind and attempt.
func lineEnds(t *testing.T, path string) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ends := map[string]int64{}
	var off int64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		off += int64(len(sc.Bytes())) + 1
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line at %d: %v", off, err)
		}
		ends[e.Kind+" "+e.Attempt] = off
	}
	return ends
}

// TestGroupCommitAcknowledgesOnlyDurableEntries: 16 workers journal
// intents and outcomes at once, as a bulk run's do. Whenever Intend or Done
// returns (the caller then makes the call, or moves on), a power cut at
// that instant keeps the entry; the mirror (the ceremony record) is given
// an entry only once it is durable; and the fsyncs are shared.
func TestGroupCommitAcknowledgesOnlyDurableEntries(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	pc := &groupcommittest.PowerCut{}
	modelPowerCuts(j, pc)
	var ackMu sync.Mutex
	acked := map[string]int64{} // kind attempt -> what a power cut kept when it was acknowledged
	ack := func(kind, attempt string) {
		ackMu.Lock()
		acked[kind+" "+attempt] = pc.Durable()
		ackMu.Unlock()
	}
	mirrored := map[string]int64{}
	j.SetMirror(func(e Entry) error {
		ackMu.Lock()
		mirrored[e.Kind+" "+e.Attempt] = pc.Durable()
		ackMu.Unlock()
		return nil
	})
	const workers, each = 16, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				p, err := j.Intend(Intent{Command: "import", Op: "CreateKey", Target: map[string]string{"KeyLabel": fmt.Sprintf("k-%d-%d", w, i)}})
				if err != nil {
					errs <- err
					return
				}
				ack(KindIntent, p.Attempt())
				if err := p.Done(ResultOK, map[string]string{"KmsKeyId": fmt.Sprintf("id-%d-%d", w, i)}, nil); err != nil {
					errs <- err
					return
				}
				ack(KindOutcome, p.Attempt())
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ends := lineEnds(t, j.Path())
	if len(acked) != 2*workers*each {
		t.Fatalf("%d entries acknowledged, want %d", len(acked), 2*workers*each)
	}
	for key, kept := range acked {
		end, ok := ends[key]
		if !ok {
			t.Errorf("%s: acknowledged, not in the journal", key)
		} else if end > kept {
			t.Errorf("%s: acknowledged when a power cut would have kept %d bytes; its line ends at %d", key, kept, end)
		}
		if m, ok := mirrored[key]; !ok || m < end {
			t.Errorf("%s: mirrored before it was durable (%d bytes durable, line ends at %d) or not at all (%v)", key, m, end, ok)
		}
	}
	syncs := pc.Syncs()
	if syncs >= len(acked)/2 {
		t.Errorf("%d fsyncs for %d entries from %d workers: appends were not grouped", syncs, len(acked), workers)
	}
	t.Logf("%d entries, %d fsyncs", len(acked), syncs)
	// Every entry is whole and in the indexes after a reopen.
	j.Close()
	j2 := open(t, dir)
	if n := len(j2.Entries()); n != 2*workers*each {
		t.Errorf("reopened: %d entries, want %d", n, 2*workers*each)
	}
	if n := len(j2.Unsettled("CreateKey", nil)); n != 0 {
		t.Errorf("reopened: %d unsettled intents, want 0", n)
	}
}

// TestAFailedFsyncIsNotAcknowledgedAndStopsTheJournal: when the fsync
// covering an intent fails, Intend fails (the call is not made), and so
// does every later append.
func TestAFailedFsyncIsNotAcknowledgedAndStopsTheJournal(t *testing.T) {
	j := open(t, t.TempDir())
	j.mu.Lock()
	j.syncHook, j.commit = func(*os.File) error { return fmt.Errorf("EIO") }, nil
	j.mu.Unlock()
	if _, err := j.Intend(Intent{Op: "CreateKey"}); err == nil {
		t.Fatal("Intend returned nil after its fsync failed")
	}
	if len(j.Unsettled("CreateKey", nil)) != 0 {
		t.Error("an intent whose fsync failed is visible to the run")
	}
	j.mu.Lock()
	j.syncHook = nil
	j.mu.Unlock()
	if err := j.Note("import", "x", nil); err == nil {
		t.Error("an append after a failed fsync was acknowledged")
	}
}
