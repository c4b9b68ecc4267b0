package kmsemu

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/internal/kmsquota"
)

// A rate of one request per 1000 s with a bucket of one: the first call
// passes, the next is throttled, whatever the machine's speed.
const tinyRPS = 0.001

func TestQuotaThrottles(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Quotas: []Quota{
		{Operations: []string{"CreateKey"}, RPS: tinyRPS},
		{Operations: []string{"Encrypt", "Decrypt"}, RPS: tinyRPS},
	}})
	keyID := aws.ToString(e.createKey(t, types.OriginTypeAwsKms).KeyId)
	t.Run("fail the second CreateKey is throttled and creates nothing", func(t *testing.T) {
		_, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{})
		wantErr(t, err, "ThrottlingException", "Rate exceeded", "CreateKey")
		if n := e.keyCount(t); n != 1 {
			t.Errorf("%d keys, want 1", n)
		}
	})
	t.Run("ok other operations have their own quota", func(t *testing.T) {
		e.describe(t, keyID)
		e.describe(t, keyID)
	})
	t.Run("ok each Region has its own bucket", func(t *testing.T) {
		if _, err := regionClient(e.url, "eu-west-1").CreateKey(ctx, &kms.CreateKeyInput{}); err != nil {
			t.Errorf("CreateKey in another Region: %v", err)
		}
	})
	t.Run("fail operations of one Quota share its bucket", func(t *testing.T) {
		blob := e.encrypt(t, keyID, []byte("x"), nil)
		_, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
		wantErr(t, err, "ThrottlingException")
	})
	t.Run("ok emulator-only operations are not throttled", func(t *testing.T) {
		e.listFaults(t)
		e.listFaults(t)
	})
}

func TestParseQuota(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		ops     []string
		rps     float64
		wantErr bool
	}{
		{"ok CreateKey=5", []string{"CreateKey"}, 5, false},
		{"ok Encrypt+Decrypt=0.5", []string{"Encrypt", "Decrypt"}, 0.5, false},
		{"fail CreateKey", nil, 0, true},
		{"fail CreateKey=0", nil, 0, true},
		{"fail CreateKey=-1", nil, 0, true},
		{"fail CreateKey=fast", nil, 0, true},
		{"fail MakeCoffee=1", nil, 0, true},
		{"fail KmsBridgeAdvanceClock=1", nil, 0, true},
	} {
		name := tt.in
		in := name[len("ok "):]
		if tt.wantErr {
			in = name[len("fail "):]
		}
		t.Run(name, func(t *testing.T) {
			qs, err := ParseQuota(in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseQuota(%q) = %+v, want an error", in, qs)
				}
				return
			}
			if err != nil || len(qs) != 1 || qs[0].RPS != tt.rps || len(qs[0].Operations) != len(tt.ops) {
				t.Fatalf("ParseQuota(%q) = %+v, %v", in, qs, err)
			}
		})
	}
	t.Run("ok aws-defaults are the published values", func(t *testing.T) {
		qs, err := ParseQuota("aws-defaults")
		if err != nil {
			t.Fatal(err)
		}
		q := newQuotas(qs)
		for op, want := range map[string]float64{"CreateKey": 5, "GetParametersForImport": 1, "ImportKeyMaterial": 15, "DescribeKey": 2000, "ListAliases": 500, "Sign": 1000} {
			if got := q.byOp[op].RPS; got != want {
				t.Errorf("%s: %g, want %g", op, got, want)
			}
		}
		for region, want := range map[string]float64{"us-east-1": 100000, "eu-central-1": 20000, "eu-north-1": 10000} {
			if _, got := q.allow("Decrypt", region); got != want {
				t.Errorf("symmetric quota in %s: %g, want %g", region, got, want)
			}
		}
	})
	t.Run("ok aws-defaults share kmsbridge's table", func(t *testing.T) {
		// awskms.DefaultRateLimits reads kmsquota.Lowest: a client
		// keeping to it, one operation at a time, is never throttled by
		// aws-defaults, and meets the same number where a quota is one
		// operation's own.
		q := newQuotas(AWSDefaultQuotas())
		lowest := kmsquota.Lowest()
		for op := range faultableOps {
			bucket, client := q.byOp[op], lowest[op]
			switch {
			case bucket == nil && client > 0:
				t.Errorf("%s: kmsbridge limits it to %g/s, aws-defaults has no quota", op, client)
			case bucket == nil:
			case len(bucket.Operations) == 1 && bucket.RPS != client:
				t.Errorf("%s: aws-defaults %g/s, kmsbridge's table %g/s", op, bucket.RPS, client)
			case bucket.RPS < client:
				t.Errorf("%s: aws-defaults %g/s, below kmsbridge's %g/s", op, bucket.RPS, client)
			}
		}
		if got := q.byOp["Verify"].Operations; !slices.Equal(got, []string{"Sign", "Verify", "DeriveSharedSecret"}) {
			t.Errorf("asymmetric bucket %v, want [Sign Verify DeriveSharedSecret]", got)
		}
	})
	t.Run("ok a later quota overrides an earlier one for its operations", func(t *testing.T) {
		q := newQuotas(append(AWSDefaultQuotas(), Quota{Operations: []string{"CreateKey"}, RPS: 50}))
		if got := q.byOp["CreateKey"].RPS; got != 50 {
			t.Errorf("CreateKey %g, want 50", got)
		}
	})
}

func TestLatency(t *testing.T) {
	t.Parallel()
	t.Run("ok requests still work with latency and jitter", func(t *testing.T) {
		e := newEnv(t, Options{Latency: time.Millisecond, LatencyJitter: time.Millisecond})
		e.createKey(t, types.OriginTypeAwsKms)
	})
	t.Run("ok a client that gives up during the latency is dropped", func(t *testing.T) {
		s := New(Options{Latency: time.Hour})
		defer s.Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if s.delay(cctx) {
			t.Error("delay reported the client present after it went away")
		}
	})
}

func TestWrappingKeyPoolFilledAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{WrappingKeyPool: map[string]int{"RSA_2048": 3}})
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := e.srv.WaitPool(wctx); err != nil {
		t.Fatalf("WaitPool: %v", err)
	}
	if got := e.srv.PoolReady()["RSA_2048"]; got != 3 {
		t.Fatalf("%d RSA_2048 pairs ready, want 3", got)
	}
	before := e.srv.pool.stats()
	keyID := aws.ToString(e.createKey(t, types.OriginTypeExternal).KeyId)
	for range 3 {
		e.params(t, keyID, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
	}
	if got := e.srv.pool.stats(); got != before {
		t.Errorf("%d pairs generated on demand with a full pool", got-before)
	}
}
