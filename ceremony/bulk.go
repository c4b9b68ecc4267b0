package ceremony

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Key statuses in a bulk run.
const (
	// StatusDone: the key is imported and verified (now or by an earlier run).
	StatusDone = "done"
	// StatusFailed: planning or importing the key failed; the others went on.
	StatusFailed = "failed"
	// StatusNotStarted: the run was interrupted before the key's turn.
	StatusNotStarted = "not-started"
)

// BulkResult is what a bulk run did for one key.
type BulkResult struct {
	// Index is the key's place in the list, from 1.
	Index    int     `json:"Index"`
	HSMLabel string  `json:"HsmLabel"`
	KeySpec  string  `json:"KeySpec"`
	Alias    string  `json:"Alias,omitempty"`
	Status   string  `json:"Status"`
	Action   string  `json:"Action,omitempty"`
	KMSKeyID string  `json:"KmsKeyId,omitempty"`
	Summary  string  `json:"Summary,omitempty"`
	Error    string  `json:"Error,omitempty"`
	Seconds  float64 `json:"Seconds"`
	// Targets, for a key with targets, is every target's outcome.
	Targets []*TargetOutcome `json:"Targets,omitempty"`
	// Err is the key's failure, for its kind (exit code).
	Err error `json:"-"`
}

// BulkSummary is a whole bulk run: counts, rate and one result per key,
// in the order of the list.
type BulkSummary struct {
	Keys          int          `json:"Keys"`
	Done          int          `json:"Done"`
	Failed        int          `json:"Failed"`
	NotStarted    int          `json:"NotStarted"`
	Parallel      int          `json:"Parallel"`
	Seconds       float64      `json:"Seconds"`
	KeysPerSecond float64      `json:"KeysPerSecond"`
	Results       []BulkResult `json:"Results"`
}

// Err is nil when every key is done, else an error counting the keys not
// done that wraps the first failed key's error, so its kind decides the
// exit code.
func (s *BulkSummary) Err() error {
	if s.Done == s.Keys {
		return nil
	}
	var first error
	for _, r := range s.Results {
		if r.Err != nil {
			first = fmt.Errorf("first failure, key %d (%s): %w", r.Index, r.HSMLabel, r.Err)
			break
		}
	}
	msg := fmt.Errorf("%d of %d keys not done (%d failed, %d not started): run the same command again to finish them; keys already done are verified and skipped", s.Keys-s.Done, s.Keys, s.Failed, s.NotStarted)
	if first == nil {
		return msg
	}
	return errors.Join(msg, first)
}

// RunAll plans and runs every key, at most parallel at a time. Each key's
// failure is its own: it is reported in its BulkResult and the other keys
// go on. Each key's steps run in order on one goroutine, so a record fed by
// Observe has every key's steps in order, interleaved with other keys'.
// Observe (the Runner's) and progress are called from several goroutines;
// progress calls are serialised, one per key as it ends. When ctx ends,
// keys not yet started are left NotStarted.
func (r *Runner) RunAll(ctx context.Context, keys []Key, parallel int, progress func(BulkResult)) *BulkSummary {
	if parallel < 1 {
		parallel = 1
	}
	start := time.Now()
	sum := &BulkSummary{Keys: len(keys), Parallel: parallel, Results: make([]BulkResult, len(keys))}
	labels := r.tokenLabels(len(keys))
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, parallel)
	)
	report := func(res BulkResult) {
		mu.Lock()
		defer mu.Unlock()
		sum.Results[res.Index-1] = res
		switch res.Status {
		case StatusDone:
			sum.Done++
		case StatusFailed:
			sum.Failed++
		default:
			sum.NotStarted++
		}
		if progress != nil {
			progress(res)
		}
	}
	for i, k := range keys {
		res := BulkResult{Index: i + 1, HSMLabel: k.HSMLabel, KeySpec: k.KeySpec, Alias: k.Alias}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			res.Status, res.Error = StatusNotStarted, "interrupted before its turn: "+ctx.Err().Error()
			report(res)
			continue
		}
		wg.Add(1)
		go func(k Key, res BulkResult) {
			defer wg.Done()
			defer func() { <-sem }()
			report(r.durable(r.runOne(ctx, k, res, labels)))
		}(k, res)
	}
	wg.Wait()
	sum.Seconds = time.Since(start).Seconds()
	if sum.Seconds > 0 {
		sum.KeysPerSecond = float64(sum.Done) / sum.Seconds
	}
	return sum
}

// searchKeysUpTo is the largest run that searches the token for each
// key's label instead of reading every label once: reading a label costs
// SoftHSM2 about a third of what a search of the token does per object,
// NSS softokn more than its indexed search (BENCHMARKS.md, run G: 10,000
// labels read 1.3 and 0.37 CPU-seconds, one search 0.4 and under 0.01).
const searchKeysUpTo = 3

// labeller is a token that can list its labels at once; *hsm.Token is.
type labeller interface {
	Labels() (map[string]int, error)
}

// tokenLabels reads the token's labels once for a run of n keys, so that
// each key's plan need not search the token for its label: on a token
// that searches by reading every object (SoftHSM2's file store) those
// searches would cost a read of every object per key. The list is read
// under the journal's lock, which keeps other kmsbridge runs off the token
// until the run ends. It is nil (a search per key) for a run of up to
// searchKeysUpTo keys, for a token that cannot list, or when listing fails.
func (r *Runner) tokenLabels(n int) map[string]int {
	l, ok := r.Token.(labeller)
	if !ok || n <= searchKeysUpTo {
		return nil
	}
	labels, err := l.Labels()
	if err != nil {
		if r.Log != nil {
			r.Log.Warn("cannot list the token's labels; searching for each key's label instead", "error", err)
		}
		return nil
	}
	return labels
}

// durable makes what res's run wrote durable (Durable) before res is
// reported: a key is reported done only once the journal and the record
// that say so would survive a power cut.
func (r *Runner) durable(res BulkResult) BulkResult {
	if r.Durable == nil {
		return res
	}
	if err := r.Durable(); err != nil {
		err = fmt.Errorf("what this key's run wrote to the journal or the ceremony record could not be made durable, so it is not reported done; run the same command again to finish it: %w", err)
		res.Status, res.Error, res.Err = StatusFailed, err.Error(), err
	}
	return res
}

// runOne plans and runs one key, turning every failure into its result.
func (r *Runner) runOne(ctx context.Context, k Key, res BulkResult, labels map[string]int) BulkResult {
	t0 := time.Now()
	defer func() { res.Seconds = time.Since(t0).Seconds() }()
	p, err := r.planKey(ctx, k, labels)
	if err != nil {
		r.observePlanError(k, err)
		res.Status, res.Error, res.Err = StatusFailed, err.Error(), err
		res.Seconds = time.Since(t0).Seconds()
		return res
	}
	res.Action, res.KMSKeyID = string(p.Action), p.KMSKeyID
	out, err := r.RunKey(ctx, p)
	if l := p.lead(); out != nil && l != nil {
		l.bulk(out, &res)
	}
	if out != nil {
		res.Targets = out.Targets
	}
	if err != nil {
		res.Status, res.Error, res.Err = StatusFailed, err.Error(), err
	} else {
		res.Status = StatusDone
	}
	res.Seconds = time.Since(t0).Seconds()
	return res
}
