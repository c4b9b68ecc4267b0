package aws

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// simulation runs the Limiter on a simulated clock against a simulated KMS
// quota: workers import keys, each needing one accepted request of op;
// KMS accepts at most its quota in any one second (one request in 1/quota
// seconds below one a second), as kms-emulator's --quota (kmsemu/quota.go)
// and as AWS documents its quotas (docs/kms-quotas.md), written here on
// its own (kmsQuota), not with the Limiter's bucket. A
// throttled request is sent again after its turn, as APIOption does.
// Everything is deterministic (a seeded jitter), so tests assert counts,
// never times measured on a real clock.
type simulation struct {
	op       string
	limit    float64       // kmsbridge's configured rate (RateLimits)
	quota    float64       // KMS's, which kmsbridge is not told
	keys     int           // keys to import
	parallel int           // workers
	work     time.Duration // a key's other steps, between two requests of op
	latency  time.Duration // each way and back, plus up to a fifth of jitter
	// A loaded machine: a share of the requests (spikes) is delayed on
	// the way to KMS's bucket by up to spike more, uniformly (the
	// scheduler, signing, the emulator's timer: BENCHMARKS.md, run G).
	spikes float64
	spike  time.Duration
	// spikeBack puts the spikes on the way back from KMS's bucket (the
	// answer late, the request on time) instead.
	spikeBack bool
	// fixedMargin turns the jitter-following margin off (Headroom alone).
	fixedMargin bool
}

// kmsQuota is KMS's quota in the simulation: the times of the requests it
// accepted within the last span, at most n of them.
type kmsQuota struct {
	span     time.Duration
	n        int
	accepted []time.Time
}

func newKMSQuota(rps float64) *kmsQuota {
	span := time.Second
	if rps < 1 {
		span = time.Duration(math.Ceil(float64(time.Second) / rps))
	}
	return &kmsQuota{span: span, n: max(1, int(math.Floor(rps*span.Seconds()+1e-9)))}
}

func (q *kmsQuota) allow(at time.Time) bool {
	q.accepted = slices.DeleteFunc(q.accepted, func(t time.Time) bool { return at.Sub(t) >= q.span })
	if len(q.accepted) >= q.n {
		return false
	}
	q.accepted = append(q.accepted, at)
	return true
}

type simResult struct {
	done, throttled, stale int
	// rate is the accepted requests' rate from the first to the last, as
	// BENCHMARKS.md measures it; final the Limiter's rate at the end.
	rate, final float64
	seconds     float64
}

type simSend struct {
	worker              int
	gen, resends        int
	seq                 uint64
	turn, arrive, reply time.Time
	back                time.Duration
	accepted            bool
}

func (sim simulation) run(t *testing.T) simResult {
	t.Helper()
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	now := start
	l := NewLimiter(RateLimits{sim.op: sim.limit})
	l.now = func() time.Time { return now }
	if sim.fixedMargin {
		s := l.state(sim.op)
		s.fixed = true
		if s.b != nil {
			s.b.pad = 0
		}
	}
	kms := newKMSQuota(sim.quota)
	jitter := rand.New(rand.NewPCG(1, 2))

	var res simResult
	var queue []int // workers waiting for a turn, with their re-send counts
	resends := map[int]int{}
	readyAt := map[int]time.Time{}
	var inflight []*simSend
	var acceptedAt []time.Time
	next := 0 // keys handed out
	for w := 0; w < sim.parallel && next < sim.keys; w++ {
		readyAt[w] = start
		next++
	}
	const step = time.Millisecond
	for deadline := start.Add(2 * time.Hour); res.done < sim.keys; now = now.Add(step) {
		if now.After(deadline) {
			t.Fatalf("simulation of %+v did not finish in 2 simulated hours: %d done", sim, res.done)
		}
		// KMS decides in order of arrival.
		slices.SortFunc(inflight, func(a, b *simSend) int { return a.arrive.Compare(b.arrive) })
		for _, s := range inflight {
			if !s.arrive.After(now) && s.reply.IsZero() {
				s.accepted = kms.allow(s.arrive)
				if s.accepted {
					acceptedAt = append(acceptedAt, s.arrive)
				}
				s.reply = s.arrive.Add(sim.latency/2 + s.back)
			}
		}
		for _, s := range inflight {
			if s.reply.IsZero() || s.reply.After(now) {
				continue
			}
			var err error
			if !s.accepted {
				err = throttle
			}
			l.mu.Lock()
			stale := !s.accepted && s.gen != l.state(sim.op).gen
			l.mu.Unlock()
			if l.observeTurn(sim.op, turn{gen: s.gen, at: s.turn, seq: s.seq}, err) {
				res.throttled++
				if stale {
					res.stale++
				}
				resends[s.worker]++
				queue = append(queue, s.worker)
				continue
			}
			res.done++
			resends[s.worker] = 0
			if next < sim.keys {
				next++
				readyAt[s.worker] = now.Add(sim.work)
			}
		}
		inflight = slices.DeleteFunc(inflight, func(s *simSend) bool { return !s.reply.IsZero() && !s.reply.After(now) })
		for w, at := range readyAt {
			if !at.After(now) {
				queue = append(queue, w)
				delete(readyAt, w)
			}
		}
		for len(queue) > 0 {
			l.mu.Lock()
			s := l.state(sim.op)
			s.calls++
			d, seq := time.Duration(0), uint64(0)
			if s.b != nil {
				d, seq = s.next(now, true)
			}
			gen := s.gen
			l.mu.Unlock()
			if d > 0 {
				break
			}
			w := queue[0]
			queue = queue[1:]
			lat := sim.latency + time.Duration(jitter.Int64N(int64(sim.latency/5)+1))
			fwd, back := lat/2, time.Duration(0)
			if sim.spikes > 0 && jitter.Float64() < sim.spikes {
				late := time.Duration(jitter.Int64N(int64(sim.spike) + 1))
				if sim.spikeBack {
					back = late
				} else {
					fwd += late
				}
			}
			inflight = append(inflight, &simSend{worker: w, gen: gen, seq: seq, turn: now, arrive: now.Add(fwd), back: back})
		}
	}
	if n := len(acceptedAt); n > 1 {
		res.rate = float64(n-1) / acceptedAt[n-1].Sub(acceptedAt[0]).Seconds()
	}
	res.final = l.Rate(sim.op)
	res.seconds = now.Sub(start).Seconds()
	return res
}

// TestLimiterFindsAQuotaItWasNotTold runs a bulk import's binding
// operation against quotas at, below and far below what kmsbridge was
// told. At the told quota nothing is throttled and it runs at the
// Limiter's 95%; below it the Limiter finds the quota with few throttles
// and sends at 90% of it or more over the run, first to last.
func TestLimiterFindsAQuotaItWasNotTold(t *testing.T) {
	for _, tt := range []struct {
		name            string
		op              string
		limit, quota    float64
		keys            int
		maxThrottled    int
		minShareOfQuota float64
		spikes          float64 // a loaded machine, as in TestLimiterKeepsClearOfJitter
	}{
		{"ok the told quota", "GetParametersForImport", 1, 1, 100, 0, 0.94, 0},
		{"ok half the told quota", "GetParametersForImport", 1, 0.5, 100, 4, 0.90, 0},
		{"ok a quarter of the told quota", "GetParametersForImport", 1, 0.25, 100, 5, 0.90, 0},
		{"ok 0.7 of the told quota", "GetParametersForImport", 1, 0.7, 100, 5, 0.85, 0},
		{"ok CreateKey at 2 of 5 a second", "CreateKey", 5, 2, 200, 12, 0.85, 0},
		{"ok ImportKeyMaterial at 3 of 15 a second", "ImportKeyMaterial", 15, 3, 200, 24, 0.85, 0},
		{"ok the told quota, loaded", "GetParametersForImport", 1, 1, 100, 0, 0.90, 0.1},
		{"ok half the told quota, loaded", "GetParametersForImport", 1, 0.5, 100, 4, 0.90, 0.1},
		{"ok a quarter of the told quota, loaded", "GetParametersForImport", 1, 0.25, 100, 5, 0.90, 0.1},
		{"ok CreateKey at the told quota, loaded", "CreateKey", 5, 5, 200, 0, 0.90, 0.1},
		{"ok ImportKeyMaterial at the told quota, loaded", "ImportKeyMaterial", 15, 15, 300, 0, 0.90, 0.1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim := simulation{op: tt.op, limit: tt.limit, quota: tt.quota, keys: tt.keys, parallel: 16, work: 200 * time.Millisecond, latency: 30 * time.Millisecond, spikes: tt.spikes, spike: 80 * time.Millisecond}
			r := sim.run(t)
			t.Logf("%d done, %d throttled (%d sent before a cut), %.3f/s = %.0f%% of the quota, final rate %.3f, %.0f s", r.done, r.throttled, r.stale, r.rate, 100*r.rate/tt.quota, r.final, r.seconds)
			if r.throttled > tt.maxThrottled {
				t.Errorf("%d throttled, want at most %d", r.throttled, tt.maxThrottled)
			}
			if share := r.rate / tt.quota; share < tt.minShareOfQuota {
				t.Errorf("sent at %.0f%% of the quota, want at least %.0f%%", 100*share, 100*tt.minShareOfQuota)
			}
			// A quota with a burst (2 and 3 a second) lets a rate just
			// above it through for a while.
			if r.final > tt.quota*1.05 {
				t.Errorf("final rate %.3f above the quota %g", r.final, tt.quota)
			}
		})
	}
}

// TestLimiterKeepsClearOfJitter: on a loaded machine some requests take
// longer to reach KMS's bucket than the one after them; at one request a
// second KMS's bucket holds one, so a request that arrives more than the
// Headroom's 53 ms early is throttled. The Limiter widens its margin to
// the spread of the round trips it sees: nothing throttled, and still 90%
// of the quota or more. With the margin fixed at Headroom's (as before),
// the same seeded runs are throttled: the test can fail.
func TestLimiterKeepsClearOfJitter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		spikes float64
		spike  time.Duration
	}{
		{"one in ten up to 80 ms later", 0.1, 80 * time.Millisecond},
		{"one in three up to 60 ms later", 0.3, 60 * time.Millisecond},
		{"one in twenty up to 85 ms later", 0.05, 85 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim := simulation{op: "GetParametersForImport", limit: 1, quota: 1, keys: 200, parallel: 16, work: 200 * time.Millisecond, latency: 30 * time.Millisecond, spikes: tt.spikes, spike: tt.spike}
			r := sim.run(t)
			t.Logf("following the jitter: %d done, %d throttled, %.3f/s = %.1f%% of the quota, %.0f s", r.done, r.throttled, r.rate, 100*r.rate, r.seconds)
			if r.throttled != 0 {
				t.Errorf("%d throttled, want none: the margin did not follow the jitter", r.throttled)
			}
			if r.rate < 0.90 {
				t.Errorf("sent at %.1f%% of the quota, want at least 90%%", 100*r.rate)
			}
			sim.fixedMargin = true
			f := sim.run(t)
			t.Logf("Headroom's margin alone: %d done, %d throttled, %.3f/s", f.done, f.throttled, f.rate)
			if f.throttled == 0 {
				t.Errorf("the fixed margin was not throttled either: this jitter does not test the margin")
			}
		})
	}
}

// TestLimiterExcusesAThrottleTheJitterExplains: with a jitter wider than
// the widest margin (one request in twenty up to 200 ms later), a throttle
// at the quota kmsbridge was told does not cut the rate (the round trips
// explain it), so the run stays at 90% of the quota or more; below the
// quota, the second throttle within a span still cuts, and the Limiter
// still finds the quota.
func TestLimiterExcusesAThrottleTheJitterExplains(t *testing.T) {
	for _, tt := range []struct {
		name         string
		quota        float64
		maxThrottled int
	}{{"ok the told quota", 1, 6}, {"ok half the told quota", 0.5, 8}} {
		t.Run(tt.name, func(t *testing.T) {
			sim := simulation{op: "GetParametersForImport", limit: 1, quota: tt.quota, keys: 200, parallel: 16, work: 200 * time.Millisecond, latency: 30 * time.Millisecond, spikes: 0.05, spike: 200 * time.Millisecond}
			r := sim.run(t)
			t.Logf("%d done, %d throttled, %.3f/s = %.1f%% of the quota, final rate %.3f", r.done, r.throttled, r.rate, 100*r.rate/tt.quota, r.final)
			if r.rate/tt.quota < 0.90 {
				t.Errorf("sent at %.1f%% of the quota, want at least 90%%", 100*r.rate/tt.quota)
			}
			if r.throttled > tt.maxThrottled {
				t.Errorf("%d throttled, want at most %d", r.throttled, tt.maxThrottled)
			}
			if r.final > tt.quota*1.05 {
				t.Errorf("final rate %.3f above the quota %g", r.final, tt.quota)
			}
		})
	}
}

// TestLimiterPacesOnTheAnswers: on a machine loaded enough to hold a
// request back on its way to KMS's bucket for far longer than any margin
// (one request in five up to 600 ms, and one in ten up to 900 ms),
// nothing is throttled at the quota kmsbridge was told, and the run keeps
// 90% of it or more: the turn after a late request waits for its answer
// (afterAnswer). A lateness on the way back (the answer late, the request
// on time) costs a little rate, no throttle. The same holds at CreateKey's
// and ImportKeyMaterial's quotas (5 and 15 a second, KMS counting them per
// second), with a lighter load. With the margin fixed at Headroom's (no
// arrival rule either), the same seeded runs are throttled.
func TestLimiterPacesOnTheAnswers(t *testing.T) {
	for _, tt := range []struct {
		name   string
		op     string
		quota  float64
		spikes float64
		spike  time.Duration
		back   bool
	}{
		{"one in five up to 600 ms on the way there", "GetParametersForImport", 1, 0.2, 600 * time.Millisecond, false},
		{"one in ten up to 900 ms on the way there", "GetParametersForImport", 1, 0.1, 900 * time.Millisecond, false},
		{"one in five up to 600 ms on the way back", "GetParametersForImport", 1, 0.2, 600 * time.Millisecond, true},
		{"CreateKey at 5, one in ten up to 300 ms on the way there", "CreateKey", 5, 0.1, 300 * time.Millisecond, false},
		{"ImportKeyMaterial at 15, one in twenty up to 200 ms on the way there", "ImportKeyMaterial", 15, 0.05, 200 * time.Millisecond, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim := simulation{op: tt.op, limit: tt.quota, quota: tt.quota, keys: 300, parallel: 16, work: 200 * time.Millisecond, latency: 30 * time.Millisecond, spikes: tt.spikes, spike: tt.spike, spikeBack: tt.back}
			r := sim.run(t)
			t.Logf("%d done, %d throttled, %.3f/s = %.1f%% of the quota", r.done, r.throttled, r.rate, 100*r.rate/tt.quota)
			if r.throttled != 0 {
				t.Errorf("%d throttled, want none", r.throttled)
			}
			if r.rate/tt.quota < 0.90 {
				t.Errorf("sent at %.1f%% of the quota, want at least 90%%", 100*r.rate/tt.quota)
			}
			if tt.back {
				return
			}
			sim.fixedMargin = true
			f := sim.run(t)
			t.Logf("Headroom's margin alone: %d throttled, %.3f/s", f.throttled, f.rate)
			if f.throttled == 0 {
				t.Errorf("the fixed margin was not throttled either: this jitter does not test the arrival rule")
			}
		})
	}
}
