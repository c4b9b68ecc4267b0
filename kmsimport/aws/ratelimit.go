package aws

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/kmsbridge/kmsbridge/internal/kmsquota"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// RateLimits is the most requests per second kmsbridge sends for each KMS
// operation, by operation name (CreateKey, GetParametersForImport, ...).
// An operation not listed, or listed with 0, is not limited.
type RateLimits map[string]float64

// calledOperations are the KMS operations kmsbridge sends (the methods of
// its KMS client interface), the ones DefaultRateLimits limits.
var calledOperations = []string{
	"CreateAlias", "CreateKey", "Decrypt", "DeleteImportedKeyMaterial", "DeriveSharedSecret", "DescribeKey",
	"Encrypt", "GenerateMac", "GetParametersForImport", "GetPublicKey", "ImportKeyMaterial",
	"ListAliases", "ListKeyRotations", "ListKeys", "ListResourceTags", "ReplicateKey",
	"RotateKeyOnDemand", "Sign", "TagResource", "UntagResource", "UpdateAlias",
}

// DefaultRateLimits are AWS KMS's default request quotas for the
// operations kmsbridge calls, per account and Region, from the table the
// emulator's --quota aws-defaults reads too (internal/kmsquota;
// docs/kms-quotas.md gives the source). An operation under several shared
// quotas (Encrypt: symmetric and RSA keys) gets the smallest, and Regions
// with higher quotas get the default. Quotas are adjustable; --kms-rate
// OP=RPS overrides.
func DefaultRateLimits() RateLimits {
	lowest := kmsquota.Lowest()
	out := RateLimits{}
	for _, op := range calledOperations {
		out[op] = lowest[op]
	}
	return out
}

// ParseRateLimits applies overrides, each OP=RPS (RPS a number of requests
// per second, 0 for no limit) or "off" (no limits at all), to base.
func ParseRateLimits(base RateLimits, overrides []string) (RateLimits, error) {
	out := RateLimits{}
	for op, rps := range base {
		out[op] = rps
	}
	for _, o := range overrides {
		if strings.TrimSpace(o) == "off" {
			out = RateLimits{}
			continue
		}
		op, v, ok := strings.Cut(o, "=")
		op = strings.TrimSpace(op)
		if !ok || op == "" {
			return nil, invalid("--kms-rate %q: give OP=RPS, e.g. GetParametersForImport=10, or off", o)
		}
		if !slices.Contains(calledOperations, op) {
			return nil, unknownOperation(o, op)
		}
		rps, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || rps < 0 || math.IsInf(rps, 0) || math.IsNaN(rps) {
			return nil, invalid("--kms-rate %q: the rate must be a number of requests per second, 0 or more (0: no limit)", o)
		}
		out[op] = rps
	}
	return out, nil
}

// unknownOperation refuses a --kms-rate operation kmsbridge never sends:
// a misspelt name would otherwise set a limit that never applies.
func unknownOperation(o, op string) error {
	for _, known := range calledOperations {
		if strings.EqualFold(known, op) {
			return invalid("--kms-rate %q: KMS operation names are case-sensitive: write %s", kmsimport.Excerpt(o), known)
		}
	}
	return invalid("--kms-rate %q: kmsbridge sends no KMS operation %q, so the limit would never apply: give one of %s", kmsimport.Excerpt(o), kmsimport.Excerpt(op), strings.Join(calledOperations, ", "))
}

// String lists the limits in a stable order, for logs.
func (rl RateLimits) String() string {
	if len(rl) == 0 {
		return "no client-side KMS rate limits"
	}
	ops := make([]string, 0, len(rl))
	for op := range rl {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	parts := make([]string, 0, len(ops))
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s=%g", op, rl[op]))
	}
	return strings.Join(parts, " ")
}

// Limiter keeps kmsbridge's KMS requests under RateLimits, per operation
// and per attempt (a retry is a request the quota counts too), and adapts
// to quotas lower than it knows (see Observe). Requests of an operation
// take their turns first come, first served, from a token bucket
// (bucket) that hands out turns only as they come: a turn is never booked
// ahead, so when a throttle cuts the rate, the requests waiting go out at
// the new rate from then on and no turn booked at the old rate is lost.
// (golang.org/x/time/rate books turns ahead: cut with sixteen requests
// waiting, it held back sixteen turns of the new rate that nobody took,
// and a bulk run under a quota half kmsbridge's sent at a quarter of it;
// BENCHMARKS.md, runs F and G.) It is safe for concurrent use; one Limiter
// serves every goroutine of a process.
type Limiter struct {
	waited atomic.Int64
	mu     sync.Mutex
	ops    map[string]*opState
	now    func() time.Time
}

// opState is one operation's pace and what the Limiter learnt of its quota.
type opState struct {
	calls, throttled int64
	// b paces the operation, nil while it has no limit.
	b *bucket
	// queue are the requests waiting for a turn, in order of arrival.
	queue []*waiter
	// ceiling is the configured rate times Headroom, 0 for none.
	ceiling float64
	// adaptive is set at the first throttle: from then on the rate
	// follows what KMS accepts.
	adaptive bool
	// gen counts the cuts: a throttle of a request sent before the last
	// cut says nothing new (it was sent at the old rate) and cuts nothing.
	gen int
	// hi is the rate of the last cut's throttle (the quota is below it),
	// 0 once forgotten; throttledAt is that throttle's time, changed the
	// time of the last cut or raise.
	hi                   float64
	throttledAt, changed time.Time
	// lo is the highest rate that held a hold without a throttle since
	// the last cut below it, 0 for none: a raise throttled goes back to it.
	lo float64
	// accepted are the times of the answers KMS did not throttle, over
	// the measuring span (span), the rate it allowed.
	accepted []time.Time
	// paths are the last jitterWindow round trips (a turn given to its
	// answer, throttled or not), oldest first: their spread is the
	// jitter the pace keeps clear of (follow).
	paths []time.Duration
	// fixed keeps the pad at 0 (the margin Headroom alone), for the
	// simulation to show what follow prevents.
	fixed bool
	// excused is the time of the last throttle the jitter explained
	// (jitterExplains), which cut nothing.
	excused time.Time
	// seq numbers the turns handed out; sent are the last
	// maxAnswerCount of them, oldest first: the pace after their answers
	// (afterAnswer).
	seq  uint64
	sent []sentTurn
}

// sentTurn is one turn handed out: its number and time, whether its
// answer is awaited (open: its request went through APIOption and has
// not been answered) and the answer's time (zero while awaited or when
// none will come).
type sentTurn struct {
	seq          uint64
	at, answered time.Time
	open         bool
}

// turn is one request's turn: the number of cuts when it went (gen), its
// time (at) and its number (seq, 0 when its answer will not be observed).
type turn struct {
	gen int
	at  time.Time
	seq uint64
}

// waiter is one request waiting for its turn; ready wakes it when it
// comes to the head of the queue or the rate changes.
type waiter struct{ ready chan struct{} }

// Adaptation, per operation, like TCP's congestion control but with what
// a quota is (a token bucket, refilled at a fixed rate):
//
//   - A ThrottlingException of a request sent at the rate in force (not
//     before the last cut) cuts the rate: to what KMS accepted over the
//     last span (span) times Headroom, a rate the quota allowed, when
//     that is lower than cutFactor of the rate; else to cutFactor of it.
//     The rate it was sent at is remembered (hi): the quota is below it.
//     The cut also empties the bucket: KMS's is empty after a throttle.
//   - A throttle the round trips explain (jitterExplains: at a quota of
//     one a second or less, their spread wider than the widest margin)
//     cuts nothing, once a span; the next one within the span cuts.
//   - A throttle at a rate that held a hold (see lo) is jitter or a
//     quota come down: the rate goes Headroom below it, and the next
//     throttle, if any, cuts by what KMS accepts.
//   - A success hold after the last cut or raise raises the rate: half
//     way to hi, or by raiseShare of the configured limit (raiseFactor
//     with none) once hi is forgotten; never within probeStop of hi, so
//     a rate found just under the quota is kept instead of probed over
//     and over, and never above the configured limit.
//   - hi is forgotten forget after its throttle: the quota may have
//     grown back (other users of the account come and go).
//
// The unit tests run it against a simulated KMS quota
// (ratelimit_sim_test.go).
const (
	cutFactor   = 0.8
	probeStop   = 0.9
	probeFactor = 1.1
	raiseShare  = 0.05
	raiseFactor = 1.1
	minRate     = 0.05
)

// hold is how long a rate stays before the next raise: four of its
// intervals, and at least 4 s (a raise above a burst-1 quota shows at its
// second request, one above a larger bucket later).
func hold(rps float64) time.Duration { return max(4*time.Second, intervals(4, rps)) }

// span is the time over which the accepted rate is measured: ten of the
// rate's intervals, at least 10 s.
func span(rps float64) time.Duration { return max(10*time.Second, intervals(10, rps)) }

// forget is how long hi is kept after its throttle: five minutes, or a
// hundred of the rate's intervals when that is longer. A raise past it
// then costs one throttle and a return to the rate that held.
func forget(rps float64) time.Duration { return max(5*time.Minute, intervals(100, rps)) }

func intervals(n, rps float64) time.Duration {
	if !(rps > 0) || math.IsInf(rps, 1) {
		return 0
	}
	return time.Duration(n / rps * float64(time.Second))
}

// Headroom is the share of each rate the Limiter uses: 5% below the
// quota, so that network jitter (a request sent on the quota's beat can
// arrive a few milliseconds early) never turns kmsbridge's own pace into
// ThrottlingException and a lost retry interval. When the round trips
// the Limiter sees spread wider than that margin, it widens the margin
// to follow them (follow), to at most MinShare of the quota.
const Headroom = 0.95

// Jitter: a request throttled at kmsbridge's own pace is one that reached
// KMS's bucket more than the margin early, because the path from its turn
// to KMS's bucket (signing, the network, a loaded machine's scheduler)
// took longer for the request before it than for it. At one request a
// second, KMS's bucket holds one request, so the 5% margin (53 ms) is all
// there is to absorb that difference (BENCHMARKS.md, run G: one throttle
// in two runs of seven on a machine at load 9 to 24). The Limiter
// therefore measures each request's round trip, from its turn to its
// answer, which bounds the path to KMS, and keeps its turns apart by the
// spread of the last jitterWindow round trips (the slowest minus the
// fastest) when that is wider than the Headroom's margin: a slow round
// trip widens the gap before the next turn as soon as its answer comes,
// which at a quota's slow pace is before the next request is sent.
// The widening is bounded: turns are never further apart than
// Headroom/MinShare of the rate's interval, so the pace stays at MinShare
// of the quota or above whatever the jitter. Until jitterSamples round
// trips are known, the margin is that bound.
const (
	// MinShare is the least share of a quota the widened margin leaves.
	MinShare      = 0.92
	jitterWindow  = 32
	jitterSamples = 2
)

// ThrottleResends is how many times the Limiter sends again a request KMS
// throttled, each after waiting its turn at the rate cut by the throttle
// (APIOption). A throttled request did nothing (docs/exactly-once.md),
// so this holds for changes too. After that many the throttle goes to
// the caller: the SDK's retryer for reads, kmsbridge's re-sends for
// changes (ThrottleAttempts).
const ThrottleResends = 8

// NewLimiter returns a Limiter for rl, each rate times Headroom, each
// operation with a burst (burst) that keeps any one second's requests
// within the quota.
func NewLimiter(rl RateLimits) *Limiter {
	l := &Limiter{ops: map[string]*opState{}, now: time.Now}
	for op, rps := range rl {
		if rps <= 0 {
			continue
		}
		s := &opState{ceiling: rps * Headroom, b: newBucket(rps*Headroom, burst(rps))}
		s.follow(time.Time{})
		l.ops[op] = s
	}
	return l
}

// burst is the most requests the Limiter sends at once at a quota of rps:
// the share of a second's worth the Headroom leaves, (1-Headroom)*rps, and
// at least one. With the rate at Headroom*rps after it, no second then
// holds more than rps requests (burst + Headroom*rps <= rps), which is all
// AWS documents of its quotas ("requests per second"; its throttling page:
// past the quota, the rest of that second's requests are throttled;
// docs/kms-quotas.md). So the pace holds whether KMS counts requests per
// second or in a token bucket of any size down to one request, and the
// request after a burst has a whole interval to arrive in. (One less than
// a second's worth, before: right for the emulator's bucket of a second's
// worth, but it sent 5+4 CreateKeys in a run's first second, over a quota
// of 5 counted per second.)
func burst(rps float64) float64 { return max(1, math.Floor((1-Headroom)*rps+1e-9)) }

// bucket is a token bucket: rate tokens a second, at most burst, one a
// request, with pad added to the interval between two tokens (the margin
// for jitter, follow). Times are given, so tests can run it on a
// simulated clock.
type bucket struct {
	rate, burst, tokens float64
	pad                 time.Duration
	last, taken         time.Time
}

// pace is the rate tokens come at: rate, slowed by pad a token.
func (b *bucket) pace() float64 {
	if b.pad <= 0 {
		return b.rate
	}
	return 1 / (1/b.rate + b.pad.Seconds())
}

func newBucket(rps, burst float64) *bucket { return &bucket{rate: rps, burst: burst, tokens: burst} }

func (b *bucket) refill(now time.Time) {
	if b.last.IsZero() {
		b.last = now
	}
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.pace())
		b.last = now
	}
}

// take takes a token at now, or says how long until there is one. A
// bucket of one token also keeps each token the whole interval plus pad
// after the last one taken, so that a pad widened between two turns (a
// slow round trip's answer) applies to the whole gap, not to what is left
// of it.
func (b *bucket) take(now time.Time) time.Duration {
	b.refill(now)
	if b.burst <= 1 && b.pad > 0 && !b.taken.IsZero() {
		next := b.taken.Add(time.Duration(math.Ceil(float64(time.Second)/b.rate)) + b.pad)
		if now.Before(next) {
			return next.Sub(now)
		}
	}
	if b.tokens >= 1 {
		b.tokens--
		b.taken = now
		return 0
	}
	return time.Duration(math.Ceil((1 - b.tokens) / b.pace() * float64(time.Second)))
}

// set changes the rate from now on (the tokens gained so far at the old
// rate are kept), with at most burst tokens, or none when empty.
func (b *bucket) set(now time.Time, rps, burst float64, empty bool) {
	b.refill(now)
	b.rate, b.burst = rps, burst
	b.tokens = min(b.tokens, burst)
	if empty {
		b.tokens = min(b.tokens, 0)
	}
}

// state returns op's state, made on first use. Callers hold l.mu.
func (l *Limiter) state(op string) *opState {
	s := l.ops[op]
	if s == nil {
		s = &opState{}
		l.ops[op] = s
	}
	return s
}

// Wait blocks until op may send one more request, or ctx ends.
func (l *Limiter) Wait(ctx context.Context, op string) error {
	_, err := l.wait(ctx, op, false)
	return err
}

// wait is Wait, returning the request's turn: its answer (observeTurn)
// then knows whether it was sent at the rate in force or before a cut,
// and how long its round trip took. With observed, the caller reports
// the answer of every turn it gets to observeTurn, whatever it is, and
// the next turn of an operation KMS's bucket holds one request of waits
// for it (afterAnswer).
func (l *Limiter) wait(ctx context.Context, op string, observed bool) (turn, error) {
	l.mu.Lock()
	s := l.state(op)
	s.calls++
	if s.b == nil {
		t := turn{gen: s.gen, at: l.now()}
		l.mu.Unlock()
		return t, nil
	}
	w := &waiter{ready: make(chan struct{}, 1)}
	s.queue = append(s.queue, w)
	start := time.Now()
	defer func() { l.waited.Add(int64(time.Since(start))) }()
	for {
		var timer *time.Timer
		var fire <-chan time.Time
		if s.queue[0] == w {
			now := l.now()
			d, seq := s.next(now, observed)
			if d == 0 {
				s.queue = s.queue[1:]
				s.wakeHead()
				t := turn{gen: s.gen, at: now, seq: seq}
				l.mu.Unlock()
				return t, nil
			}
			timer = time.NewTimer(d)
			fire = timer.C
		}
		l.mu.Unlock()
		select {
		case <-fire:
		case <-w.ready:
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			l.mu.Lock()
			s.queue = slices.DeleteFunc(s.queue, func(x *waiter) bool { return x == w })
			s.wakeHead()
			l.mu.Unlock()
			return turn{}, ctx.Err()
		}
		if timer != nil {
			timer.Stop()
		}
		l.mu.Lock()
	}
}

// next gives the request at the head of the queue its turn at now and
// returns its number, or says how long until the turn comes: after the
// answer rule (afterAnswer) and the bucket. observed: the answer will be
// reported (wait). Callers hold l.mu.
func (s *opState) next(now time.Time, observed bool) (time.Duration, uint64) {
	if d := s.afterAnswer(now); d > 0 {
		return d, 0
	}
	if d := s.b.take(now); d > 0 {
		return d, 0
	}
	s.seq++
	s.sent = append(s.sent, sentTurn{seq: s.seq, at: now, open: observed})
	if len(s.sent) > maxAnswerCount {
		s.sent = slices.Delete(s.sent, 0, len(s.sent)-maxAnswerCount)
	}
	if !observed {
		return 0, 0
	}
	return 0, s.seq
}

// Arrival: what must hold is that no request reaches KMS while KMS has
// counted its quota's n requests within the span before (n the quota's
// whole requests in its span: at a quota of q a second, n = max(1,
// floor(q)) requests in n/q seconds; at GetParametersForImport's one a
// second, one a second; at CreateKey's five, five in any second): a
// request must reach KMS a span or more after the one n before it did.
// A loaded machine can hold any request back on its way there for longer
// than any margin a pace keeps (BENCHMARKS.md, run H: throttles 24 and 28
// s into runs at load 12 to 20, with the margin at the round trips'
// spread; run I: a run's first CreateKeys against a count per second).
// The Limiter cannot see when a request reached KMS, but it sees when the
// answer came, and a request reached KMS before its answer came back. So
// the next turn comes no sooner than one span after the answer of the
// request n turns before it, less half the fastest round trip of the
// window once answerSamples are known (the part of the way to KMS the next
// request takes at least, if no more than half of it is the way there;
// against the emulator, whose latency is served before its count, nearly
// all of it is), besides the bucket's own pace: a request held back on
// its way to KMS, however long, holds back as long the request that comes
// n after it. While that request is unanswered (or its answer is not
// reported: Wait), the next waits for the answer, at most answerWait
// spans after its turn, so that a request that hangs does not stop the
// others. Quotas of more than maxAnswerCount a second are far above what
// kmsbridge's workers send and are paced by the bucket alone.
//
// This costs nothing while the round trips are even: at a round trip of
// 30 ms the bucket's pace (the span over Headroom, 5% more) comes later.
// It replaces follow's widened margin at these quotas (a slow round trip
// widened the next 32 gaps by its spread; this widens one gap, by the
// lateness itself).
const (
	answerWait     = 2
	maxAnswerCount = 16
)

// answerSamples is how many round trips must be known before half the
// fastest is taken off the interval after an answer: the first few may
// all be slow (a run's start on a loaded machine), and half of a slow one
// is more than the next request's way to KMS may take (run I: the second
// GetParametersForImport of a run at load 47 reached KMS 0.9 s after the
// first, when only the first's round trip was known).
const answerSamples = 4

// afterAnswer is how long the arrival rule above holds the next turn at
// now, 0 when it does not. Callers hold l.mu.
func (s *opState) afterAnswer(now time.Time) time.Duration {
	n, span, ok := s.arrivalCount()
	if !ok || len(s.sent) < n {
		return 0
	}
	before := s.sent[len(s.sent)-n]
	var at time.Time
	switch {
	case before.open:
		at = before.at.Add(answerWait * span)
	case !before.answered.IsZero():
		fastest := time.Duration(0)
		if len(s.paths) >= answerSamples {
			fastest = slices.Min(s.paths)
		}
		at = before.answered.Add(span - fastest/2)
	default:
		return 0
	}
	if now.Before(at) {
		return at.Sub(now)
	}
	return 0
}

// arrivalCount is the count of the quota op's rate is taken from (the rate
// over Headroom): its n whole requests and the span they take, and whether
// the turns follow the answers (afterAnswer). Callers hold l.mu.
func (s *opState) arrivalCount() (int, time.Duration, bool) {
	if s.fixed || s.b == nil || !(s.b.rate > 0) || math.IsInf(s.b.rate, 1) {
		return 0, 0, false
	}
	q := s.b.rate / Headroom
	n := max(1, math.Floor(q+1e-9))
	if n > maxAnswerCount {
		return 0, 0, false
	}
	return int(n), time.Duration(math.Ceil(n / q * float64(time.Second))), true
}

// arrivalPaced reports whether op's turns follow the answers
// (afterAnswer). Callers hold l.mu.
func (s *opState) arrivalPaced() bool {
	_, _, ok := s.arrivalCount()
	return ok
}

// wakeHead tells the request at the head of the queue to look again.
// Callers hold l.mu.
func (s *opState) wakeHead() {
	if len(s.queue) > 0 {
		select {
		case s.queue[0].ready <- struct{}{}:
		default:
		}
	}
}

// Observe takes the answer to one request of op, sent at the rate now in
// force: a ThrottlingException cuts op's rate, a success may raise a cut
// rate again (see the constants above).
func (l *Limiter) Observe(op string, err error) {
	l.mu.Lock()
	gen := l.state(op).gen
	l.mu.Unlock()
	l.observe(op, gen, err)
}

// observe is Observe for a request sent after gen cuts of op's rate; it
// reports whether the answer was a ThrottlingException.
func (l *Limiter) observe(op string, gen int, err error) bool {
	return l.observeTurn(op, turn{gen: gen}, err)
}

// observeTurn is observe for the request of turn t (t.at zero when not
// known), whatever its answer: an answer tells the next turn when this
// request had reached KMS (afterAnswer), and its round trip, throttled or
// not, is one more measure of the jitter the pace keeps clear of (follow).
func (l *Limiter) observeTurn(op string, t turn, err error) bool {
	throttled := throttling(err)
	gen, sent := t.gen, t.at
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	s := l.state(op)
	if t.seq != 0 {
		for i := len(s.sent) - 1; i >= 0; i-- {
			if s.sent[i].seq == t.seq {
				if s.sent[i].open {
					s.sent[i].open, s.sent[i].answered = false, now
					s.wakeHead()
				}
				break
			}
		}
	}
	if err != nil && !throttled {
		return false
	}
	if !sent.IsZero() && !now.Before(sent) {
		s.paths = append(s.paths, now.Sub(sent))
		if len(s.paths) > jitterWindow {
			s.paths = slices.Delete(s.paths, 0, len(s.paths)-jitterWindow)
		}
	}
	defer s.follow(now)
	if !throttled {
		s.accepted = append(s.accepted, now)
		s.trim(now)
		if s.adaptive {
			s.raise(now)
		}
		return false
	}
	s.throttled++
	if gen != s.gen {
		// Sent before the last cut, at the old rate: nothing new.
		return true
	}
	if s.jitterExplains(now) {
		// Early after a late request, not over a lower quota: KMS's
		// bucket is empty, the rate stays.
		s.excused = now
		s.b.set(now, s.b.rate, s.b.burst, true)
		return true
	}
	s.cut(now)
	return true
}

// jitterExplains reports whether a throttle at the rate in force is one the
// round trips explain: at a quota of one request a second or less (KMS's
// bucket holds one), their spread was wider than the
// widest margin the pace keeps (Headroom and the most follow adds), so a
// request could reach KMS early after a late one at a rate within the
// quota. Such a throttle does not cut the rate; one a span (span) at most,
// so that a quota come down under a jittery path is still found, at its
// second throttle. Callers hold l.mu.
func (s *opState) jitterExplains(now time.Time) bool {
	if s.fixed || s.b == nil || len(s.paths) < jitterSamples {
		return false
	}
	r := s.b.rate
	if !(r > 0) || r > Headroom {
		return false
	}
	if !s.excused.IsZero() && now.Sub(s.excused) < span(r) {
		return false
	}
	widest := time.Duration((Headroom/MinShare - Headroom) / r * float64(time.Second))
	return slices.Max(s.paths)-slices.Min(s.paths) > widest
}

// follow sets the margin for jitter: the pad between two turns is the
// spread of the last round trips beyond what Headroom keeps already
// ((1-Headroom) of the quota's interval), at most what leaves MinShare of
// the quota, and that bound until jitterSamples round trips are known.
// A narrower pad wakes the request at the head of the queue, whose turn
// may have come. Callers hold l.mu.
func (s *opState) follow(now time.Time) {
	if s.fixed || s.b == nil || !(s.b.rate > 0) || math.IsInf(s.b.rate, 1) {
		return
	}
	interval := 1 / s.b.rate // seconds, at the rate in force
	most := time.Duration((Headroom/MinShare - 1) * interval * float64(time.Second))
	pad := most
	switch {
	case s.arrivalPaced():
		// The answers pace it (afterAnswer), by the lateness itself.
		pad = 0
	case len(s.paths) >= jitterSamples:
		spread := slices.Max(s.paths) - slices.Min(s.paths)
		kept := time.Duration((1 - Headroom) * interval * float64(time.Second))
		pad = min(most, max(0, spread-kept))
	}
	if pad == s.b.pad {
		return
	}
	if !now.IsZero() {
		s.b.refill(now)
	}
	s.b.pad = pad
	s.wakeHead()
}

// current is the rate op is sent at, +Inf for none.
func (s *opState) current() float64 {
	if s.b == nil {
		return math.Inf(1)
	}
	return s.b.rate
}

// trim drops the accepted answers older than the measuring span.
func (s *opState) trim(now time.Time) {
	w := span(s.current())
	i := 0
	for i < len(s.accepted) && now.Sub(s.accepted[i]) > w {
		i++
	}
	s.accepted = s.accepted[i:]
}

// acceptedRate is the rate of the accepted answers over the span, from
// their spacing, 0 with fewer than two.
func (s *opState) acceptedRate(now time.Time) float64 {
	s.trim(now)
	n := len(s.accepted)
	if n < 2 {
		return 0
	}
	d := s.accepted[n-1].Sub(s.accepted[0]).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(n-1) / d
}

func (s *opState) cut(now time.Time) {
	r := s.current()
	next := r * cutFactor
	if acc := s.acceptedRate(now); acc > 0 {
		// A rate KMS allowed, measured: below it, by Headroom.
		next = min(acc, r) * Headroom
	}
	switch {
	case s.lo > 0 && s.lo < r:
		// A raise above a rate that held was throttled: back to that rate.
		next = s.lo
	case s.lo > 0:
		// Throttled at a rate that held: a request that arrived early
		// (jitter), or the quota came down. Headroom below it; if the
		// quota came down, the next throttle cuts by what KMS accepts.
		next = r * Headroom
		s.lo = 0
	}
	if math.IsInf(r, 1) {
		// No limit so far (--kms-rate off): what it was sending. Nothing
		// counted: start at one a second and let successes find the rate.
		r = s.acceptedRate(now)
		if r == 0 {
			r = 1 / cutFactor
		}
		next = r * cutFactor
	}
	next = max(minRate, next)
	s.adaptive, s.hi, s.throttledAt, s.changed = true, r, now, now
	s.gen++
	if s.b == nil {
		s.b = newBucket(next, 1)
		s.b.tokens = 0
	} else {
		s.b.set(now, next, 1, true)
	}
	s.wakeHead()
}

func (s *opState) raise(now time.Time) {
	r := s.current()
	if now.Sub(s.changed) < hold(r) {
		return
	}
	// r held (a throttle would have cut it since): it is within the quota.
	s.lo = max(s.lo, r)
	if s.hi > 0 && now.Sub(s.throttledAt) >= forget(r) {
		s.hi = 0
	}
	var next float64
	switch {
	case s.hi > 0 && r >= probeStop*s.hi:
		return
	case s.hi > 0:
		next = min((r+s.hi)/2, r*probeFactor)
	case s.ceiling > 0:
		next = r + raiseShare*s.ceiling
	default:
		next = r * raiseFactor
	}
	if s.ceiling > 0 {
		next = min(next, s.ceiling)
	}
	if next <= r {
		return
	}
	s.changed = now
	s.b.set(now, next, 1, false)
	s.wakeHead()
}

// Throttled returns how many ThrottlingException answers each operation
// got (the Limiter adapted to each).
func (l *Limiter) Throttled() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int64{}
	for op, s := range l.ops {
		if s.throttled > 0 {
			out[op] = s.throttled
		}
	}
	return out
}

// Rate is the rate op is sent at now, 0 for no limit.
func (l *Limiter) Rate(op string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.ops[op]; s != nil && s.b != nil {
		return s.b.rate
	}
	return 0
}

// Calls returns how many requests of each operation went through the
// Limiter (attempts, retries and re-sends included).
func (l *Limiter) Calls() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int64{}
	for op, s := range l.ops {
		if s.calls > 0 {
			out[op] = s.calls
		}
	}
	return out
}

// Waited is the total time requests spent waiting for their turn.
func (l *Limiter) Waited() time.Duration { return time.Duration(l.waited.Load()) }

// APIOption installs the Limiter in a KMS client's middleware stack, after
// the SDK's retry step so that every attempt waits its turn. A request KMS
// throttles is sent again from here, up to ThrottleResends times, each
// after its turn at the rate the throttle cut: the Limiter's pace is its
// backoff, and it never sleeps in the SDK's (exponential, up to
// MaxBackoff, which a bulk run's last keys waited out with nothing else
// to send).
func (l *Limiter) APIOption() func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		mw := middleware.FinalizeMiddlewareFunc("kmsbridge.RateLimit", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			for resend := 0; ; resend++ {
				t, err := l.wait(ctx, op, true)
				if err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
				attempt := in
				if req, ok := in.Request.(*smithyhttp.Request); ok {
					// Each send gets its own copy (signing changes it) of
					// the body from its start.
					c := req.Clone()
					if err := c.RewindStream(); err != nil {
						return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("sending %s again after a throttle: %w", op, err)
					}
					attempt.Request = c
				}
				out, md, err := next.HandleFinalize(ctx, attempt)
				if !l.observeTurn(op, t, err) || resend == ThrottleResends {
					return out, md, err
				}
			}
		})
		if _, ok := stack.Finalize.Get("Retry"); ok {
			return stack.Finalize.Insert(mw, "Retry", middleware.After)
		}
		return stack.Finalize.Add(mw, middleware.After)
	}
}
