package kmsimport

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
	"github.com/kmsbridge/kmsbridge/internal/kmsquota"
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
			return invalid("--kms-rate %q: KMS operation names are case-sensitive: write %s", Excerpt(o), known)
		}
	}
	return invalid("--kms-rate %q: kmsbridge sends no KMS operation %q, so the limit would never apply: give one of %s", Excerpt(o), Excerpt(op), strings.Join(calledOperations, ", "))
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
// and per attempt (a retry is a request the quota counts too). It is safe
// for concurrent use; one Limiter serves every goroutine of a process.
type Limiter struct {
	limits map[string]*rate.Limiter
	waited atomic.Int64
	mu     sync.Mutex
	calls  map[string]int64
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
	l := &Limiter{limits: map[string]*rate.Limiter{}, calls: map[string]int64{}}
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
	lim, ok := l.limits[op]
	if !ok {
		return nil
	}
	start := time.Now()
	err := lim.Wait(ctx)
	l.waited.Add(int64(time.Since(start)))
	return err
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
			if err := l.Wait(ctx, middleware.GetOperationName(ctx)); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			return next.HandleFinalize(ctx, in)
		})
		if _, ok := stack.Finalize.Get("Retry"); ok {
			return stack.Finalize.Insert(mw, "Retry", middleware.After)
		}
		return stack.Finalize.Add(mw, middleware.After)
	}
}
