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
)

// Quota is a request quota: the Operations share one count per Region
// (KMS's quotas are per account and Region) of at most RPS requests in any
// one second (window): what AWS documents of its quotas, no more. A
// request above it is ThrottlingException and does nothing. See doc.go,
// "Latency and request quotas".
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
	buckets map[quotaBucket]*window
}

// window counts the requests a quota accepted over its last span: at a
// quota of rps requests a second, at most max(1, rps*span) requests in
// any span of one second, or of 1/rps seconds below one a second (one
// request, then none for 1/rps). AWS documents its quotas as requests per
// second and that, past one, "AWS KMS throttles all subsequent ...
// requests in that second" (its guide's "Throttling AWS KMS requests";
// docs/kms-quotas.md): a count per second, no bucket and no burst. Of the
// counts that text allows, a window sliding with each request is the
// strictest: a client it accepts is within the quota counted per calendar
// second or in a token bucket holding a second's worth, and one that
// counts on such a bucket's burst (a second's worth at once, then the
// rate: twice the quota within one second) is throttled here, as the text
// says KMS may. (The token bucket of a second's worth used before let
// such a burst through; kmsbridge's limiter sent one.)
type window struct {
	span time.Duration
	n    int
	// accepted[head:] are the times accepted within span, oldest first.
	accepted []time.Time
	head     int
}

func newWindow(rps float64) *window {
	span := time.Second
	if rps < 1 {
		span = time.Duration(math.Ceil(float64(time.Second) / rps))
	}
	return &window{span: span, n: max(1, int(math.Floor(rps*span.Seconds()+1e-9)))}
}

// allow takes one request at now, reporting false when the window holds
// its n already.
func (w *window) allow(now time.Time) bool {
	for w.head < len(w.accepted) && now.Sub(w.accepted[w.head]) >= w.span {
		w.head++
	}
	if w.head > 0 && w.head >= len(w.accepted)/2 {
		w.accepted = append(w.accepted[:0], w.accepted[w.head:]...)
		w.head = 0
	}
	if len(w.accepted)-w.head >= w.n {
		return false
	}
	w.accepted = append(w.accepted, now)
	return true
}

type quotaBucket struct {
	q      *Quota
	region string
}

func newQuotas(qs []Quota) *quotas {
	out := &quotas{byOp: map[string]*Quota{}, buckets: map[quotaBucket]*window{}}
	for i := range qs {
		q := &qs[i]
		for _, op := range q.Operations {
			out.byOp[op] = q
		}
	}
	return out
}

// allow takes one request of op in region from its quota's window,
// reporting false when the quota is exhausted.
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
	defer qs.mu.Unlock()
	b := quotaBucket{q, region}
	w := qs.buckets[b]
	if w == nil {
		w = newWindow(rps)
		qs.buckets[b] = w
	}
	return w.allow(time.Now()), rps
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
