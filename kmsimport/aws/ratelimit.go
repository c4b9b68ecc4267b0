package aws

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/kmsbridge/kmsbridge/internal/kmsquota"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"golang.org/x/time/rate"
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
// to quotas lower than it knows: a ThrottlingException cuts the
// operation's rate below what it was sending, and successes raise it
// again, slowly, towards the configured limit (see Observe). It is safe
// for concurrent use; one Limiter serves every goroutine of a process.
type Limiter struct {
	// limits are the configured limits, fixed at NewLimiter; their rates
	// change (under mu) as the Limiter adapts.
	limits map[string]*rate.Limiter
	waited atomic.Int64
	mu     sync.Mutex
	calls  map[string]int64
	// adapt is each operation's adaptive state, once throttled; an
	// operation without a configured limit gets a limiter then too.
	adapt     map[string]*adaptive
	throttled map[string]int64
	// recent are the times of each operation's requests let through in
	// the last second, the rate KMS saw when it throttled; accepted those
	// of its answers that were not throttled, the rate KMS allowed.
	recent, accepted map[string][]time.Time
	now              func() time.Time
}

// adaptive is what the Limiter learnt of one operation's real quota.
type adaptive struct {
	lim *rate.Limiter
	// ceiling is the configured rate (times Headroom), 0 for none.
	ceiling float64
	// current is the rate in force; lastCut and lastRaise when it was
	// last cut and raised.
	current            float64
	lastCut, lastRaise time.Time
	// cuts counts the cuts, so that a turn reserved before one is taken
	// again (Wait).
	cuts int
}

// Adaptive rate: after a ThrottlingException the operation's rate is cut
// to cutFactor of what KMS accepted of it over the last window (or of
// what was sent, or of its rate, whichever is lowest), at most once a
// window (the other requests in flight at that moment were sent at the
// old rate and may be throttled too), never below minRate; a success a
// window after the last cut or raise raises it by raiseFactor plus
// raiseShare of the configured limit, up to that limit. The window is a second, or two of the operation's
// intervals when that is longer: at one request a second, one second
// holds one request or none, too few to tell a rate. Like TCP's
// congestion control, it finds a quota it was not told, and keeps
// finding it when other users of the account come and go, at the cost
// of one throttle now and then.
const (
	cutFactor   = 0.8
	raiseFactor = 1.02
	raiseShare  = 0.05
	minRate     = 0.05
)

// window is the span op's rates are measured over, at rate rps (0 or
// +Inf: not limited).
func window(rps float64) time.Duration {
	w := time.Second
	if rps > 0 && !math.IsInf(rps, 1) {
		w = max(w, time.Duration(2/rps*float64(time.Second)))
	}
	return w
}

// Headroom is the share of each rate the Limiter uses: 5% below the
// quota, so that network jitter (a request sent on the quota's beat can
// arrive a few milliseconds early) never turns kmsbridge's own pace into
// ThrottlingException and a lost retry interval.
const Headroom = 0.95

// NewLimiter returns a Limiter for rl, each rate times Headroom. Each
// operation may send a burst of at most one second's worth (and at least
// one request) at once.
func NewLimiter(rl RateLimits) *Limiter {
	l := &Limiter{limits: map[string]*rate.Limiter{}, calls: map[string]int64{}, adapt: map[string]*adaptive{}, throttled: map[string]int64{}, recent: map[string][]time.Time{}, accepted: map[string][]time.Time{}, now: time.Now}
	for op, rps := range rl {
		if rps <= 0 {
			continue
		}
		burst := int(rps)
		if burst < 1 {
			burst = 1
		}
		l.limits[op] = rate.NewLimiter(rate.Limit(rps*Headroom), burst)
	}
	return l
}

// Wait blocks until op may send one more request, or ctx ends.
func (l *Limiter) Wait(ctx context.Context, op string) error {
	l.mu.Lock()
	l.calls[op]++
	l.mu.Unlock()
	for {
		l.mu.Lock()
		lim, ok := l.limits[op]
		cuts := 0
		if a := l.adapt[op]; a != nil {
			lim, ok, cuts = a.lim, true, a.cuts
		}
		l.mu.Unlock()
		if !ok {
			break
		}
		start := time.Now()
		err := lim.Wait(ctx)
		l.waited.Add(int64(time.Since(start)))
		if err != nil {
			return err
		}
		// A turn taken at a rate since cut was reserved at the old pace:
		// the requests queued behind a throttle would all go out at it
		// and be throttled in turn. Such a request waits again, at the
		// new rate.
		l.mu.Lock()
		again := l.adapt[op] != nil && l.adapt[op].cuts != cuts
		l.mu.Unlock()
		if !again {
			break
		}
	}
	l.mu.Lock()
	now := l.now()
	l.recent[op] = trimTo(append(l.recent[op], now), now, l.windowOf(op))
	l.mu.Unlock()
	return nil
}

// windowOf is op's measuring window. Callers hold l.mu.
func (l *Limiter) windowOf(op string) time.Duration {
	if a := l.adapt[op]; a != nil {
		return window(a.current)
	}
	if lim, ok := l.limits[op]; ok {
		return window(float64(lim.Limit()))
	}
	return time.Second
}

// trimTo drops the times of ts older than w before now.
func trimTo(ts []time.Time, now time.Time, w time.Duration) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > w {
		i++
	}
	return ts[i:]
}

// Observe takes the answer to one request of op: a ThrottlingException
// cuts op's rate, a success raises a cut rate again.
func (l *Limiter) Observe(op string, err error) {
	var ae smithy.APIError
	throttled := err != nil && errors.As(err, &ae) && ae.ErrorCode() == "ThrottlingException"
	if err != nil && !throttled {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.windowOf(op)
	l.accepted[op] = trimTo(l.accepted[op], now, w)
	a := l.adapt[op]
	if !throttled {
		l.accepted[op] = append(l.accepted[op], now)
		// At most one raise a window: a rate just under the quota is
		// held for a while before it probes above it again.
		if a != nil && (a.ceiling == 0 || a.current < a.ceiling) && now.Sub(a.lastCut) >= w && now.Sub(a.lastRaise) >= w {
			a.lastRaise = now
			a.current = a.current*raiseFactor + raiseShare*a.ceiling
			if a.ceiling > 0 {
				a.current = min(a.current, a.ceiling)
			}
			a.lim.SetLimit(rate.Limit(a.current))
		}
		return
	}
	l.throttled[op]++
	if a == nil {
		// The first throttle of op: from now on its rate adapts, from the
		// configured rate or, with none, from what it sent.
		a = &adaptive{current: math.Inf(1)}
		if lim, ok := l.limits[op]; ok {
			a.ceiling, a.current, a.lim = float64(lim.Limit()), float64(lim.Limit()), lim
		}
		l.adapt[op] = a
	} else if now.Sub(a.lastCut) < w {
		return
	}
	// What KMS accepted over the window is the best guess of the quota;
	// with nothing accepted yet, what was sent is an upper bound. A
	// window holds a count of requests, one more or less than the rate
	// times its length: the estimate takes the one more, so that a rate
	// of one request in two seconds is not read as none.
	l.recent[op] = trimTo(l.recent[op], now, w)
	secs := w.Seconds()
	base := a.current
	if ok := float64(len(l.accepted[op])); ok > 0 {
		base = min(base, (ok+1)/secs)
	} else if seen := float64(len(l.recent[op])); seen > 0 {
		base = min(base, (seen+1)/secs)
	}
	if math.IsInf(base, 1) {
		// Nothing counted yet and no limit: start from one request a
		// second and let successes find the rate.
		base = 1 / cutFactor
	}
	a.current = max(minRate, base*cutFactor)
	a.lastCut = now
	a.cuts++
	if a.lim == nil {
		a.lim = rate.NewLimiter(rate.Limit(a.current), 1)
	} else {
		a.lim.SetLimit(rate.Limit(a.current))
		a.lim.SetBurst(1)
	}
}

// Throttled returns how many ThrottlingException answers each operation
// got (the Limiter adapted to each).
func (l *Limiter) Throttled() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.throttled)
}

// Rate is the rate op is sent at now, 0 for no limit.
func (l *Limiter) Rate(op string) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := l.adapt[op]; a != nil {
		return a.current
	}
	if lim, ok := l.limits[op]; ok {
		return float64(lim.Limit())
	}
	return 0
}

// Calls returns how many requests of each operation went through the
// Limiter (attempts, retries included).
func (l *Limiter) Calls() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int64, len(l.calls))
	for op, n := range l.calls {
		out[op] = n
	}
	return out
}

// Waited is the total time requests spent waiting for their turn.
func (l *Limiter) Waited() time.Duration { return time.Duration(l.waited.Load()) }

// APIOption installs the Limiter in a KMS client's middleware stack, after
// the SDK's retry step so that every attempt waits its turn.
func (l *Limiter) APIOption() func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		mw := middleware.FinalizeMiddlewareFunc("kmsbridge.RateLimit", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			op := middleware.GetOperationName(ctx)
			if err := l.Wait(ctx, op); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			out, md, err := next.HandleFinalize(ctx, in)
			l.Observe(op, err)
			return out, md, err
		})
		if _, ok := stack.Finalize.Get("Retry"); ok {
			return stack.Finalize.Insert(mw, "Retry", middleware.After)
		}
		return stack.Finalize.Add(mw, middleware.After)
	}
}
