package aws

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestParseRateLimits(t *testing.T) {
	base := RateLimits{"CreateKey": 5, "GetParametersForImport": 1}
	tests := []struct {
		name    string
		in      []string
		want    RateLimits
		wantErr bool
	}{
		{"ok defaults", nil, base, false},
		{"ok override", []string{"GetParametersForImport=10"}, RateLimits{"CreateKey": 5, "GetParametersForImport": 10}, false},
		{"ok zero is no limit", []string{"CreateKey=0"}, RateLimits{"CreateKey": 0, "GetParametersForImport": 1}, false},
		{"ok off then one", []string{"off", "CreateKey=2"}, RateLimits{"CreateKey": 2}, false},
		{"fail no equals", []string{"CreateKey"}, nil, true},
		{"fail negative", []string{"CreateKey=-1"}, nil, true},
		{"fail not a number", []string{"CreateKey=fast"}, nil, true},
		{"fail misspelt operation", []string{"GetParametersForImprot=10"}, nil, true},
		{"fail operation in the wrong case", []string{"createkey=2"}, nil, true},
		{"fail operation kmsbridge never sends", []string{"GenerateDataKey=2"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRateLimits(base, tt.in)
			if tt.wantErr {
				if !errors.Is(err, kmsimport.ErrInvalidInput) {
					t.Fatalf("got %v, want an invalid-input error", err)
				}
				return
			}
			if err != nil || got.String() != tt.want.String() {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestDefaultRateLimits(t *testing.T) {
	rl := DefaultRateLimits()
	t.Run("ok every operation kmsbridge calls has a quota", func(t *testing.T) {
		for _, op := range calledOperations {
			if !(rl[op] > 0) {
				t.Errorf("%s: default rate %g, want a quota from internal/kmsquota", op, rl[op])
			}
		}
	})
	t.Run("ok the published defaults", func(t *testing.T) {
		for op, want := range map[string]float64{
			"CreateKey": 5, "GetParametersForImport": 1, "ImportKeyMaterial": 15, "DescribeKey": 2000,
			"TagResource": 10, "ListAliases": 500,
			// The smallest shared quota naming each: RSA (1,000), not symmetric (10,000).
			"Encrypt": 1000, "Sign": 1000,
		} {
			if rl[op] != want {
				t.Errorf("%s: %g, want %g", op, rl[op], want)
			}
		}
	})
	t.Run("ok the limiter runs 5% under each quota", func(t *testing.T) {
		l := NewLimiter(rl)
		if got := l.Rate("GetParametersForImport"); got != 0.95 {
			t.Errorf("GetParametersForImport paced at %g/s, want 0.95", got)
		}
	})
}

func TestLimiterTakesATokenPerRequest(t *testing.T) {
	l := NewLimiter(RateLimits{"CreateKey": 1, "DescribeKey": 0})
	if l.Rate("DescribeKey") != 0 {
		t.Error("a rate of 0 is limited, want unlimited")
	}
	if err := l.Wait(context.Background(), "CreateKey"); err != nil {
		t.Fatal(err)
	}
	if tok := l.ops["CreateKey"].b.tokens; tok >= 1 {
		t.Errorf("%.2f tokens left after one request at 1/s with burst 1, want less than 1", tok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Wait(ctx, "CreateKey"); err == nil {
		t.Error("a request over the rate with its context ended did not fail")
	}
}

// TestLimiterCountsEveryAttempt checks the middleware sits after the SDK's
// retry step: a request retried after a 500 waits for the limiter twice.
func TestLimiterCountsEveryAttempt(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if hits.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"__type":"KMSInternalException","message":"try again"}`))
			return
		}
		_, _ = w.Write([]byte(`{"KeyMetadata":{"KeyId":"k1"}}`))
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	l := NewLimiter(RateLimits{"DescribeKey": 1000})
	c, err := NewClient(context.Background(), ClientOptions{Region: "us-east-1", EndpointURL: srv.URL, AllowEndpoint: srv.URL, Limiter: l})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("k1")}); err != nil {
		t.Fatal(err)
	}
	if got := l.Calls()["DescribeKey"]; got != 2 || hits.Load() != 2 {
		t.Errorf("limiter saw %d DescribeKey attempts, server %d; want 2 and 2", got, hits.Load())
	}
}

// throttle is the error KMS answers above a quota, as the SDK gives it.
var throttle = &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}

// TestLimiterAdaptsToAQuotaLowerThanItKnows: a ThrottlingException cuts
// the operation's rate once (not again for the requests sent before the
// cut), to what KMS accepted when that is lower; successes probe half way
// back to the rate that was throttled, stop short of it, and climb to the
// configured limit once that throttle is forgotten; other errors change
// nothing.
func TestLimiterAdaptsToAQuotaLowerThanItKnows(t *testing.T) {
	const op = "GetParametersForImport"
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	l := NewLimiter(RateLimits{op: 1})
	l.now = func() time.Time { return now }
	const configured = 1 * Headroom
	l.Observe(op, errors.New("connection reset"))
	l.Observe(op, &smithy.GenericAPIError{Code: "NotFoundException"})
	if got := l.Rate(op); got != configured {
		t.Fatalf("rate %g after errors that are not throttling, want %g", got, configured)
	}
	// Two requests sent at the configured rate: one accepted, one throttled.
	gen := l.ops[op].gen
	l.observe(op, gen, nil)
	now = now.Add(time.Second)
	l.observe(op, gen, throttle)
	cut := l.Rate(op)
	if want := configured * cutFactor; math.Abs(cut-want) > 1e-9 {
		t.Fatalf("rate %g after a throttle with one answer accepted, want %g", cut, want)
	}
	if l.ops[op].b.tokens > 0 {
		t.Errorf("%g turns left after a throttle, want none: KMS's bucket is empty", l.ops[op].b.tokens)
	}
	l.observe(op, gen, throttle) // sent before the cut, at the old rate
	if got := l.Rate(op); got != cut {
		t.Errorf("rate %g after the throttle of a request sent before the cut, want %g (no second cut)", got, cut)
	}
	// At the cut rate, KMS accepts one request in two seconds (a quota of
	// 0.5/s) and throttles the next: the cut goes to what it accepted.
	gen = l.ops[op].gen
	now = now.Add(time.Second)
	l.observe(op, gen, nil)
	now = now.Add(2 * time.Second)
	l.observe(op, gen, nil)
	now = now.Add(time.Second)
	l.observe(op, gen, throttle)
	found := l.Rate(op)
	if want := 0.5 * Headroom; math.Abs(found-want) > 1e-9 {
		t.Fatalf("rate %g after a throttle with answers accepted 2 s apart, want %g (their rate times Headroom)", found, want)
	}
	// A success within the hold keeps the rate; after it, a probe half
	// way to the rate throttled (cut); then none within probeStop of it.
	now = now.Add(hold(found) - time.Millisecond)
	l.observe(op, l.ops[op].gen, nil)
	if got := l.Rate(op); got != found {
		t.Errorf("rate %g raised before the hold (%v), want %g", got, hold(found), found)
	}
	now = now.Add(time.Millisecond)
	l.observe(op, l.ops[op].gen, nil)
	probe := l.Rate(op)
	if want := min((found+cut)/2, found*probeFactor); math.Abs(probe-want) > 1e-9 {
		t.Fatalf("rate %g after the hold, want %g (a step towards %g, the rate throttled)", probe, want, cut)
	}
	for range 10 {
		now = now.Add(hold(l.Rate(op)))
		l.observe(op, l.ops[op].gen, nil)
	}
	if got := l.Rate(op); got < probeStop*cut || got >= cut {
		t.Errorf("rate %g after ten holds without a throttle, want it held in [%g, %g): close to the rate throttled, never at it", got, probeStop*cut, cut)
	}
	// A raise that is throttled goes back to the rate that held before it.
	before := l.Rate(op)
	l.ops[op].hi = 0 // as if forgotten: the next hold raises
	now = now.Add(hold(before))
	l.observe(op, l.ops[op].gen, nil)
	if l.Rate(op) <= before {
		t.Fatalf("rate %g, want a raise above %g once the rate throttled is forgotten", l.Rate(op), before)
	}
	l.observe(op, l.ops[op].gen, throttle)
	if got := l.Rate(op); got != before {
		t.Fatalf("rate %g after a raise was throttled, want %g, the rate that held", got, before)
	}
	// A throttle at a rate that held (early arrival, or the quota came
	// down): Headroom below it, not a cut to what was accepted.
	now = now.Add(hold(before))
	l.observe(op, l.ops[op].gen, nil)
	l.observe(op, l.ops[op].gen, throttle)
	if got, want := l.Rate(op), before*Headroom; math.Abs(got-want) > 1e-9 {
		t.Fatalf("rate %g after a throttle at %g, the rate that held, want %g", got, before, want)
	}
	held := l.Rate(op)
	// Once the throttle is forgotten, successes climb back to the
	// configured rate and no higher.
	for range 200 {
		now = now.Add(hold(l.Rate(op)))
		l.observe(op, l.ops[op].gen, nil)
	}
	if got := l.Rate(op); got != configured {
		t.Errorf("rate %g after 200 successes a hold apart (held at %g before), want back at the configured %g and no higher", got, held, configured)
	}
	if n := l.Throttled()[op]; n != 5 {
		t.Errorf("%d throttles counted, want 5", n)
	}
}

// TestLimiterLimitsAnOperationItWasNotToldToLimit: with no limit (--kms-rate
// off), a throttle sets one below what KMS accepted, and successes raise it.
func TestLimiterLimitsAnOperationItWasNotToldToLimit(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	l := NewLimiter(nil)
	l.now = func() time.Time { return now }
	for i := 0; i < 11; i++ {
		if err := l.Wait(context.Background(), "CreateKey"); err != nil {
			t.Fatal(err)
		}
		l.Observe("CreateKey", nil)
		now = now.Add(100 * time.Millisecond)
	}
	if got := l.Rate("CreateKey"); got != 0 {
		t.Fatalf("rate %g before any throttle, want 0 (no limit)", got)
	}
	l.Observe("CreateKey", throttle)
	if got, want := l.Rate("CreateKey"), 10*cutFactor; math.Abs(got-want) > 1e-9 {
		t.Errorf("rate %g after a throttle with answers accepted at 10 a second, want %g", got, want)
	}
	for i := 0; i < 50; i++ {
		now = now.Add(hold(l.Rate("CreateKey")))
		l.Observe("CreateKey", nil)
	}
	if got := l.Rate("CreateKey"); got <= 10*cutFactor {
		t.Errorf("rate %g after 50 successes: successes must raise a rate no one configured", got)
	}
}

// TestLimiterResendsThrottledRequests: a request KMS throttles is sent
// again by the Limiter after its turn (a change too: the SDK sends
// CreateKey once), the same body each time, up to ThrottleResends times;
// then the throttle goes to the caller.
func TestLimiterResendsThrottledRequests(t *testing.T) {
	for _, tt := range []struct {
		name      string
		throttles int32
		wantErr   bool
	}{
		{"ok two throttles then accepted", 2, false},
		{"fail throttled every time", 1 << 20, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			var first atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				first.CompareAndSwap(nil, string(body))
				if string(body) != first.Load().(string) || len(body) == 0 {
					t.Errorf("send %d: body %q, want the first send's %q", hits.Load()+1, body, first.Load())
				}
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				if hits.Add(1) <= tt.throttles {
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
					return
				}
				_, _ = w.Write([]byte(`{"KeyMetadata":{"KeyId":"k1"}}`))
			}))
			defer srv.Close()
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
			l := NewLimiter(RateLimits{"CreateKey": 1000})
			c, err := NewClient(context.Background(), ClientOptions{Region: "us-east-1", EndpointURL: srv.URL, AllowEndpoint: srv.URL, Limiter: l})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("resend")})
			wantHits := min(tt.throttles+1, ThrottleResends+1)
			if got := hits.Load(); got != wantHits {
				t.Errorf("server saw %d sends, want %d", got, wantHits)
			}
			if tt.wantErr != (err != nil) || err != nil && !throttling(err) {
				t.Errorf("err %v, want a throttle: %v", err, tt.wantErr)
			}
			if got := l.Throttled()["CreateKey"]; got != int64(min(tt.throttles, ThrottleResends+1)) {
				t.Errorf("%d throttles counted, want %d", got, min(tt.throttles, ThrottleResends+1))
			}
		})
	}
}

// TestLimiterQueueSurvivesCutsAndCancels: requests waiting when the rate
// is cut all go out, none lost or twice, and a request whose context ends
// leaves the queue without holding up the others. (Run with -race.)
func TestLimiterQueueSurvivesCutsAndCancels(t *testing.T) {
	const op, workers, each = "DescribeKey", 16, 5
	l := NewLimiter(RateLimits{op: 2000})
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Wait(context.Background(), op); err != nil {
					t.Error(err)
					return
				}
				sent.Add(1)
				if i == 2 {
					l.Observe(op, throttle)
				} else {
					l.Observe(op, nil)
				}
			}
		}()
	}
	// One request that gives up while others wait.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- l.Wait(ctx, op) }()
	cancel()
	wg.Wait()
	if got := sent.Load(); got != workers*each {
		t.Errorf("%d requests went out, want %d", got, workers*each)
	}
	if err := <-gaveUp; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("the cancelled request: %v, want nil or context.Canceled", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.ops[op].queue); n != 0 {
		t.Errorf("%d requests left in the queue, want none", n)
	}
}

// TestLimiterKeepsEverySecondWithinTheQuota: from a full bucket (a run's
// start, or an operation idle for a while), no one second holds more of
// the Limiter's requests than the quota, so the pace holds whether KMS
// counts a quota per second (AWS's throttling page) or in a token bucket
// of a second's worth (the emulator), and the request after the burst has
// a whole interval to arrive in.
func TestLimiterKeepsEverySecondWithinTheQuota(t *testing.T) {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		rps       float64
		wantBurst int
	}{{0.5, 1}, {1, 1}, {2, 1}, {5, 1}, {15, 1}, {100, 5}, {500, 25}, {2000, 100}} {
		b := NewLimiter(RateLimits{"CreateKey": tt.rps}).ops["CreateKey"].b
		var sent []time.Time
		for now := start; now.Before(start.Add(3 * time.Second)); now = now.Add(100 * time.Microsecond) {
			for b.take(now) == 0 {
				sent = append(sent, now)
			}
		}
		burst := 0
		for _, at := range sent {
			if at.Equal(start) {
				burst++
			}
		}
		if burst != tt.wantBurst {
			t.Errorf("quota %g a second: %d requests sent at once, want %d", tt.rps, burst, tt.wantBurst)
		}
		for i, from := range sent {
			n := 0
			for _, at := range sent[i:] {
				if at.Sub(from) < time.Second {
					n++
				}
			}
			if float64(n) > math.Max(1, tt.rps) {
				t.Errorf("quota %g a second: %d requests in the second from %v, over the quota", tt.rps, n, from.Sub(start))
				break
			}
		}
	}
}

// TestLimiterWaitsForTheLastAnswer steps the arrival rule (afterAnswer) at
// GetParametersForImport's quota of one a second: while a request is
// unanswered the next waits for its answer (at most two intervals), and a
// late answer holds the next turn back to one quota interval after it,
// less half the fastest round trip, however late it was.
func TestLimiterWaitsForTheLastAnswer(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	now := t0
	l := NewLimiter(RateLimits{"GetParametersForImport": 1})
	l.now = func() time.Time { return now }
	s := l.state("GetParametersForImport")
	take := func() (time.Duration, turn) {
		d, seq := s.next(now, true)
		return d, turn{gen: s.gen, at: now, seq: seq}
	}
	d, first := take()
	if d != 0 {
		t.Fatalf("first turn: wait %v, want none", d)
	}
	now = t0.Add(30 * time.Millisecond)
	l.observeTurn("GetParametersForImport", first, nil) // an even round trip: 30 ms
	now = t0.Add(time.Second)
	if d, _ = take(); d <= 0 {
		t.Fatalf("second turn at 1 s: none to wait, want the bucket's pace (1/0.95 s)")
	}
	now = t0.Add(time.Duration(math.Ceil(float64(time.Second) / Headroom)))
	d, second := take()
	if d != 0 {
		t.Fatalf("second turn at the bucket's pace: wait %v, want none (an even round trip holds nothing back)", d)
	}
	// The second request is held back on its way: no answer yet when the
	// third turn is due.
	now = second.at.Add(1200 * time.Millisecond)
	d, _ = take()
	if want := second.at.Add(2 * time.Second).Sub(now); d != want {
		t.Fatalf("third turn with the second unanswered: wait %v, want %v (until its answer, at most two intervals)", d, want)
	}
	now = second.at.Add(1500 * time.Millisecond)
	l.observeTurn("GetParametersForImport", second, nil)
	d, _ = take()
	if want := time.Second; d != want {
		t.Fatalf("third turn right after a 1.5 s round trip, two round trips known: wait %v, want %v (a whole quota interval: too few round trips to take the fastest's half off)", d, want)
	}
	now = now.Add(d)
	d, third := take()
	if d != 0 {
		t.Fatalf("third turn: wait %v more, want none", d)
	}
	now = third.at.Add(30 * time.Millisecond)
	l.observeTurn("GetParametersForImport", third, nil)
	now = third.at.Add(time.Duration(math.Ceil(float64(time.Second) / Headroom)))
	d, fourth := take()
	if d != 0 {
		t.Fatalf("fourth turn: wait %v, want none", d)
	}
	now = fourth.at.Add(1200 * time.Millisecond)
	l.observeTurn("GetParametersForImport", fourth, nil)
	d, _ = take()
	if want := time.Second - 15*time.Millisecond; d != want {
		t.Fatalf("fifth turn right after a 1.2 s round trip, four known: wait %v, want %v (a quota interval less half the fastest round trip)", d, want)
	}
	// Wait (no answer reported) does not hold the next turn for one.
	l2 := NewLimiter(RateLimits{"GetParametersForImport": 1})
	l2.now = func() time.Time { return now }
	s2 := l2.state("GetParametersForImport")
	if d, _ := s2.next(now, false); d != 0 {
		t.Fatalf("first unobserved turn: wait %v", d)
	}
	now = now.Add(time.Duration(math.Ceil(float64(time.Second) / Headroom)))
	if d, _ := s2.next(now, false); d != 0 {
		t.Fatalf("unobserved turns wait for answers that never come: %v", d)
	}
}
