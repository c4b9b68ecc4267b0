package kmsimport

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
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
				if !errors.Is(err, ErrInvalidInput) {
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
		if got := float64(l.limits["GetParametersForImport"].Limit()); got != 0.95 {
			t.Errorf("GetParametersForImport paced at %g/s, want 0.95", got)
		}
	})
}

func TestLimiterTakesATokenPerRequest(t *testing.T) {
	l := NewLimiter(RateLimits{"CreateKey": 1, "DescribeKey": 0})
	if _, limited := l.limits["DescribeKey"]; limited {
		t.Error("a rate of 0 is limited, want unlimited")
	}
	if err := l.Wait(context.Background(), "CreateKey"); err != nil {
		t.Fatal(err)
	}
	if tok := l.limits["CreateKey"].Tokens(); tok >= 1 {
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
