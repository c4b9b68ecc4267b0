package kmsemu

import (
	"context"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Fault kinds of KmsBridgeInjectFault. See doc.go, "Fault injection".
const (
	faultInternalError = "InternalError"
	faultThrottling    = "Throttling"
	faultReset         = "Reset"
	faultHang          = "Hang"
	faultLostResponse  = "LostResponse"

	maxHangMillis   int32 = 600_000
	maxFaultCounter int32 = 1_000_000
	maxFiredLog           = 10_000
)

var faultKinds = []string{faultInternalError, faultThrottling, faultReset, faultHang, faultLostResponse}

// fault is one pending KmsBridgeInjectFault rule.
type fault struct {
	id        int
	operation string
	kind      string
	// region, when set, limits the fault to calls in that Region: only
	// they count towards its occurrence and only they get it.
	region string
	hang   time.Duration
	// skip is how many more calls of operation pass before the fault fires;
	// left is how many calls it still hits after that.
	skip, left int
}

// firedFault is one entry of the log KmsBridgeListFaults reports.
type firedFault struct {
	FaultId    int
	Operation  string
	Fault      string
	Call       int // the call's number among all calls of Operation since the Server started
	TookEffect bool
	Outcome    string
	Time       epochTime // wall clock, not the emulated clock
}

// faults holds the pending faults, the per-operation call counters and the
// log of fired faults. It has its own lock: it is consulted before a request
// takes Server.mu, and a hanging request must not hold Server.mu.
type faults struct {
	mu      sync.Mutex
	nextID  int
	pending []*fault
	calls   map[string]int
	// regionCalls counts the calls of each operation per Region.
	regionCalls map[string]map[string]int
	fired       []firedFault
}

// take counts one call of op in region and returns the fault it must
// suffer, if any, with the call's number. Every pending fault of op (of
// that Region, or of none) that is still skipping counts the call; of those
// due, the one injected first fires, and any other due fault waits for the
// next call.
func (f *faults) take(op, region string) (*fault, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
		f.regionCalls = map[string]map[string]int{}
	}
	f.calls[op]++
	n := f.calls[op]
	if f.regionCalls[region] == nil {
		f.regionCalls[region] = map[string]int{}
	}
	f.regionCalls[region][op]++
	var hit *fault
	for _, p := range f.pending {
		if p.operation != op || p.region != "" && p.region != region {
			continue
		}
		if p.skip > 0 {
			p.skip--
			continue
		}
		if hit == nil {
			hit = p
		}
	}
	if hit == nil {
		return nil, n
	}
	hit.left--
	if hit.left == 0 {
		f.pending = slices.DeleteFunc(f.pending, func(p *fault) bool { return p == hit })
	}
	copied := *hit
	return &copied, n
}

func (f *faults) record(ff *fault, call int, tookEffect bool, outcome string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fired) >= maxFiredLog {
		f.fired = f.fired[1:]
	}
	f.fired = append(f.fired, firedFault{
		FaultId: ff.id, Operation: ff.operation, Fault: ff.kind, Call: call,
		TookEffect: tookEffect, Outcome: outcome, Time: epochTime{time.Now()},
	})
}

type injectFaultInput struct {
	Operation  *string
	Occurrence *int32
	Fault      *string
	HangMillis *int32
	Count      *int32
	Region     *string
}

type injectFaultOutput struct {
	FaultId int
}

// faultable reports whether op can be given a fault: every emulated KMS
// operation, but no emulator-only operation.
func faultable(op string) bool { return faultableOps[op] }

// faultableOps is filled from operations at init, which would otherwise
// refer to itself through injectFault.
var faultableOps = map[string]bool{}

func init() {
	for op := range operations {
		if !isTestOperation(op) {
			faultableOps[op] = true
		}
	}
}

// injectFault implements KmsBridgeInjectFault. It runs with s.mu held, which
// it does not need: the rule goes into s.faults.
func (s *Server) injectFault(c *call, body []byte) (any, *apiError) {
	var in injectFaultInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	if v.required("operation", in.Operation != nil) && !faultable(*in.Operation) {
		v.add("Value '" + truncate(*in.Operation) + "' at 'operation' failed to satisfy constraint: Member must be an operation kms-emulator emulates (not an emulator-only one)")
	}
	if v.required("fault", in.Fault != nil) {
		v.enum("fault", in.Fault, faultKinds)
	}
	v.intRange("occurrence", in.Occurrence, 1, maxFaultCounter)
	v.intRange("count", in.Count, 1, maxFaultCounter)
	if in.Fault != nil && *in.Fault == faultHang {
		if v.required("hangMillis", in.HangMillis != nil) {
			v.intRange("hangMillis", in.HangMillis, 1, maxHangMillis)
		}
	} else if in.HangMillis != nil {
		v.add("Value at 'hangMillis' failed to satisfy constraint: Member applies only to Fault Hang")
	}
	if in.Region != nil && !regionNameRE.MatchString(*in.Region) {
		v.add("Value '" + truncate(*in.Region) + "' at 'region' failed to satisfy constraint: Member must be a Region name such as us-east-1")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	ff := &fault{operation: *in.Operation, kind: *in.Fault, skip: 0, left: 1}
	if in.Region != nil {
		ff.region = *in.Region
	}
	if in.Occurrence != nil {
		ff.skip = int(*in.Occurrence) - 1
	}
	if in.Count != nil {
		ff.left = int(*in.Count)
	}
	if in.HangMillis != nil {
		ff.hang = time.Duration(*in.HangMillis) * time.Millisecond
	}
	s.faults.mu.Lock()
	s.faults.nextID++
	ff.id = s.faults.nextID
	s.faults.pending = append(s.faults.pending, ff)
	s.faults.mu.Unlock()
	s.log.Info("fault injected", "faultId", ff.id, "operation", ff.operation, "fault", ff.kind,
		"occurrence", ff.skip+1, "count", ff.left, "hang", ff.hang, "region", ff.region)
	return injectFaultOutput{FaultId: ff.id}, nil
}

type pendingFault struct {
	FaultId    int
	Operation  string
	Fault      string
	Occurrence int // 1: the next call of Operation gets it
	Count      int
	HangMillis int    `json:",omitempty"`
	Region     string `json:",omitempty"`
}

type listFaultsOutput struct {
	Pending     []pendingFault
	Fired       []firedFault
	Calls       map[string]int
	RegionCalls map[string]map[string]int
}

// listFaults implements KmsBridgeListFaults.
func (s *Server) listFaults(c *call, body []byte) (any, *apiError) {
	var in struct{}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	out := listFaultsOutput{Pending: []pendingFault{}, Fired: slices.Clone(f.fired), Calls: map[string]int{}, RegionCalls: map[string]map[string]int{}}
	if out.Fired == nil {
		out.Fired = []firedFault{}
	}
	for _, p := range f.pending {
		out.Pending = append(out.Pending, pendingFault{
			FaultId: p.id, Operation: p.operation, Fault: p.kind,
			Occurrence: p.skip + 1, Count: p.left, HangMillis: int(p.hang / time.Millisecond), Region: p.region,
		})
	}
	for op, n := range f.calls {
		out.Calls[op] = n
	}
	for region, calls := range f.regionCalls {
		out.RegionCalls[region] = maps.Clone(calls)
	}
	return out, nil
}

type clearFaultsOutput struct {
	Cleared int
}

// clearFaults implements KmsBridgeClearFaults: it drops every pending fault
// and the log of fired ones. Call counters keep counting.
func (s *Server) clearFaults(c *call, body []byte) (any, *apiError) {
	var in struct{}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.pending)
	f.pending = nil
	f.fired = nil
	return clearFaultsOutput{Cleared: n}, nil
}

// hang waits d, or until the client goes away or the Server closes. It
// reports whether the client is still there.
func (s *Server) hang(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	case <-s.done:
		return ctx.Err() == nil
	}
}

// abortConnection closes the request's connection without writing a
// response. On TCP it sets SO_LINGER 0 first, so the client sees a reset
// (ECONNRESET) rather than an orderly close.
func abortConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
}

// isTestOperation reports whether op is one of the emulator-only
// operations, which exist only with Options.TestOperations.
func isTestOperation(op string) bool {
	return strings.HasPrefix(op, "KmsBridge")
}

// resetRegion forgets everything of one Region (KmsBridgeResetRegion): its
// keys, aliases and tags, the faults armed for it and its call counters,
// as if no request had come for it. kmsbridge accepts only real Region
// names, so a test that isolates many scenarios by Region on one emulator
// reuses each name after resetting it. The log of fired faults is kept.
// The wrapping key pairs the Region's requests got go back to the test
// key cache, if there is one (Options.TestKeys), to be handed out again:
// nothing the emulator still holds can tell that from a fresh pair.
func (s *Server) resetRegion(c *call, body []byte) (any, *apiError) {
	var in struct{ Region string }
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Region == "" {
		return nil, errorf("ValidationException", "Region is required: the Region whose state to forget")
	}
	if r := s.regions[in.Region]; r != nil {
		for _, k := range r.pairs {
			s.pool.keys.Release(k)
		}
	}
	delete(s.regions, in.Region)
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	kept := f.pending[:0]
	for _, p := range f.pending {
		if p.region != in.Region {
			kept = append(kept, p)
		}
	}
	f.pending = kept
	delete(f.regionCalls, in.Region)
	return struct{ Region string }{in.Region}, nil
}
