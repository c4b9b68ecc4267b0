package kmsemu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/kmsquota"
	"golang.org/x/time/rate"
)

// Quota is a request quota: the Operations share one token bucket per
// Region (KMS's quotas are per account and Region), refilled at RPS
// requests per second and holding at most max(1, ceil(RPS)) requests, so a
// client may send up to one second's worth at once. A request above it is
// ThrottlingException and does nothing. See doc.go, "Latency and request
// quotas".
type Quota struct {
	Operations []string
	RPS        float64
	// RegionRPS overrides RPS in the Regions it names.
	RegionRPS map[string]float64
}

// AWSDefaultQuotas returns AWS KMS's published default request quotas
// (internal/kmsquota, the table kmsbridge's client-side limits read too;
// docs/kms-quotas.md gives the source) for the operations the emulator
// has. The symmetric cryptographic operations share one quota of 10,000
// requests per second (20,000 or 100,000 in the Regions the page names);
// Sign and Verify share 1,000 (the RSA, ECC and ML-DSA quotas are 1,000
// each; the emulator counts them as one, the smallest, since it applies
// quotas before it reads the key). Encrypt and Decrypt count against the
// symmetric quota even with RSA keys, for the same reason.
func AWSDefaultQuotas() []Quota {
	var out []Quota
	for _, q := range kmsquota.Defaults() {
		if !q.Shared && faultable(q.Operations[0]) {
			out = append(out, Quota{Operations: q.Operations, RPS: q.RPS})
		}
	}
	sym := kmsquota.Symmetric()
	symQ := Quota{Operations: emulated(sym.Operations, nil), RPS: sym.RPS, RegionRPS: sym.RegionRPS}
	asym := Quota{RPS: math.Inf(1)}
	for _, q := range kmsquota.Asymmetric() {
		asym.RPS = min(asym.RPS, q.RPS)
		asym.Operations = append(asym.Operations, emulated(q.Operations, slices.Concat(symQ.Operations, asym.Operations))...)
	}
	return append(out, symQ, asym)
}

// emulated returns the operations of ops the emulator has, except those
// in taken.
func emulated(ops, taken []string) []string {
	var out []string
	for _, op := range ops {
		if faultable(op) && !slices.Contains(taken, op) {
			out = append(out, op)
		}
	}
	return out
}

// ParseQuota reads one --quota value: "aws-defaults" (AWSDefaultQuotas), or
// OP=RPS, or OP+OP...=RPS for operations that share one bucket. Every OP
// must be an operation the emulator emulates; RPS a number > 0.
func ParseQuota(s string) ([]Quota, error) {
	if s == "aws-defaults" {
		return AWSDefaultQuotas(), nil
	}
	ops, rps, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fmt.Errorf("quota %q: want OP=RPS, OP+OP=RPS or aws-defaults", s)
	}
	r, err := strconv.ParseFloat(rps, 64)
	if err != nil || !(r > 0) || math.IsInf(r, 0) {
		return nil, fmt.Errorf("quota %q: requests per second must be a number > 0", s)
	}
	q := Quota{RPS: r}
	for _, op := range strings.Split(ops, "+") {
		if !faultable(op) {
			return nil, fmt.Errorf("quota %q: %q is not an operation kms-emulator emulates", s, op)
		}
		q.Operations = append(q.Operations, op)
	}
	return []Quota{q}, nil
}

// quotas applies Options.Quotas. An operation belongs to the last Quota
// that names it.
type quotas struct {
	byOp map[string]*Quota

	mu      sync.Mutex
	buckets map[quotaBucket]*rate.Limiter
}

type quotaBucket struct {
	q      *Quota
	region string
}

func newQuotas(qs []Quota) *quotas {
	out := &quotas{byOp: map[string]*Quota{}, buckets: map[quotaBucket]*rate.Limiter{}}
	for i := range qs {
		q := &qs[i]
		for _, op := range q.Operations {
			out.byOp[op] = q
		}
	}
	return out
}

// allow takes one request of op in region from its bucket, reporting false
// when the quota is exhausted.
func (qs *quotas) allow(op, region string) (bool, float64) {
	q := qs.byOp[op]
	if q == nil {
		return true, 0
	}
	rps := q.RPS
	if r, ok := q.RegionRPS[region]; ok {
		rps = r
	}
	qs.mu.Lock()
	b := quotaBucket{q, region}
	l := qs.buckets[b]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(rps), max(1, int(math.Ceil(rps))))
		qs.buckets[b] = l
	}
	qs.mu.Unlock()
	return l.Allow(), rps
}

// delay waits Options.Latency plus a uniform share of Options.LatencyJitter
// in real time. It reports false if the client went away meanwhile: the
// request is then dropped, as if it never arrived.
func (s *Server) delay(ctx context.Context) bool {
	d := s.latency
	if s.jitter > 0 {
		d += rand.N(s.jitter)
	}
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.done:
	}
	return ctx.Err() == nil
}
