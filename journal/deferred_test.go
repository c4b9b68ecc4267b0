package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/groupcommit/groupcommittest"
)

// mirrorModel is a mirror (the ceremony record) whose entries are durable
// only once its own sync, started after they were given, has returned.
type mirrorModel struct {
	mu             sync.Mutex
	given, durable int
	index          map[string]int // kind attempt -> position given
	syncs          int
}

func (m *mirrorModel) mirror(e Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.given++
	m.index[e.Kind+" "+e.Attempt] = m.given
	return nil
}

func (m *mirrorModel) sync() error {
	m.mu.Lock()
	covers := m.given
	m.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.syncs++
	if covers > m.durable {
		m.durable = covers
	}
	return nil
}

func (m *mirrorModel) durableNow() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.durable
}

// TestDeferredOutcomesAreDurableBeforeTheNextIntentAndSync: with
// SetDeferred, 16 workers journal intent, outcome and progress, as a bulk
// run's do, and only intents wait. Whenever Intend returns (the caller
// then makes the call), a power cut at that instant keeps the intent and
// every line written before it, the worker's earlier outcomes included,
// in the journal and in the mirror; whenever Sync returns, everything
// written before it. A power cut right after a deferred outcome (written,
// its fsync not yet awaited) loses at most the lines after the last
// fsync: the journal it leaves opens, whole lines only, with every intent
// that was acknowledged, and a lost outcome shows as an unsettled intent,
// which recovery settles by the call's effect.
func TestDeferredOutcomesAreDurableBeforeTheNextIntentAndSync(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	pc := &groupcommittest.PowerCut{}
	modelPowerCuts(j, pc)
	m := &mirrorModel{index: map[string]int{}}
	j.SetMirror(m.mirror)
	j.SetDeferred(true, m.sync)

	type ack struct {
		key     string // kind attempt
		kept    int64  // journal bytes a power cut kept when acknowledged
		mirrorK int    // mirror entries a power cut kept then
	}
	var ackMu sync.Mutex
	var acks []ack
	acknowledge := func(keys ...string) {
		kept, mk := pc.Durable(), m.durableNow()
		ackMu.Lock()
		for _, k := range keys {
			acks = append(acks, ack{k, kept, mk})
		}
		ackMu.Unlock()
	}
	// cut is a copy of the journal as a power cut would leave it, taken
	// right after a deferred outcome, and the intents acknowledged by then.
	var cutOnce sync.Once
	var cut []byte
	var cutAcked []string
	const workers, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var unacked []string // outcomes written, not yet acknowledged
			for i := 0; i < each; i++ {
				p, err := j.Intend(Intent{Command: "import", Op: "CreateKey", Target: map[string]string{"KeyLabel": fmt.Sprintf("k-%d-%d", w, i)}})
				if err != nil {
					errs <- err
					return
				}
				// The intent, and what this worker wrote before it,
				// before the call.
				acknowledge(append(unacked, KindIntent+" "+p.Attempt())...)
				unacked = nil
				if err := p.Progress(map[string]string{"HsmKeyId": fmt.Sprint(i)}); err != nil {
					errs <- err
					return
				}
				if err := p.Done(ResultOK, map[string]string{"KmsKeyId": fmt.Sprintf("id-%d-%d", w, i)}, nil); err != nil {
					errs <- err
					return
				}
				unacked = append(unacked, KindProgress+" "+p.Attempt(), KindOutcome+" "+p.Attempt())
				if w == 3 && i == each/2 {
					cutOnce.Do(func() {
						// A power cut now: the file keeps what the
						// last fsync covered.
						data, err := os.ReadFile(j.Path())
						if err == nil {
							cut = data[:pc.Durable()]
						}
						ackMu.Lock()
						for _, a := range acks {
							if a.key[:len(KindIntent)] == KindIntent {
								cutAcked = append(cutAcked, a.key)
							}
						}
						ackMu.Unlock()
					})
				}
			}
			// Before the worker reports its keys done.
			if err := j.Sync(); err != nil {
				errs <- err
				return
			}
			acknowledge(unacked...)
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ends := lineEnds(t, j.Path())
	if len(ends) != 3*workers*each {
		t.Fatalf("%d entries in the journal, want %d", len(ends), 3*workers*each)
	}
	if len(acks) != 3*workers*each {
		t.Fatalf("%d entries acknowledged, want %d", len(acks), 3*workers*each)
	}
	for _, a := range acks {
		end, ok := ends[a.key]
		if !ok {
			t.Errorf("%s: acknowledged, not in the journal", a.key)
		} else if end > a.kept {
			t.Errorf("%s: acknowledged when a power cut would have kept %d bytes; its line ends at %d", a.key, a.kept, end)
		}
		if a.key[:len(KindIntent)] == KindIntent {
			if mi, ok := m.index[a.key]; !ok || mi > a.mirrorK {
				t.Errorf("%s: its call would have been made with the mirror's entry not durable (entry %d, %d durable)", a.key, mi, a.mirrorK)
			}
		}
	}
	t.Logf("%d entries; %d journal fsyncs, %d mirror fsyncs", len(acks), pc.Syncs(), m.syncs)
	if pc.Syncs() >= workers*each {
		t.Errorf("%d journal fsyncs for %d intents from %d workers: not grouped", pc.Syncs(), workers*each, workers)
	}

	// The journal a power cut right after a deferred outcome leaves.
	if cut == nil {
		t.Fatal("no power cut was taken")
	}
	cutDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cutDir, scope.FileName()), cut, 0o600); err != nil {
		t.Fatal(err)
	}
	jc := open(t, cutDir)
	if jc.Torn != "" {
		t.Errorf("the journal a power cut left ends in a torn line (%s): the fsyncs did not cover whole lines", jc.Torn)
	}
	have := map[string]bool{}
	for _, e := range jc.Entries() {
		have[e.Kind+" "+e.Attempt] = true
	}
	for _, k := range cutAcked {
		if !have[k] {
			t.Errorf("%s was acknowledged (its call made) before the power cut, but the journal it left lacks it", k)
		}
	}
	unsettled := jc.Unsettled("CreateKey", nil)
	for _, e := range unsettled {
		if !have[KindIntent+" "+e.Attempt] {
			t.Errorf("unsettled %s is not an intent of the journal", e.Attempt)
		}
	}
	t.Logf("the power cut kept %d entries; %d intents acknowledged by then; %d left unsettled for recovery", len(jc.Entries()), len(cutAcked), len(unsettled))
}
