package aws

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// unknownFor makes op answer NotFoundException for key ids this ledger
// created, the first n times: KMS's eventual consistency right after
// CreateKey (or ReplicateKey, in the replica's Region).
func unknownFor[I, O any](fn *func(I) (O, error), keyID func(I) string, fresh map[string]int) {
	inner := *fn
	*fn = func(in I) (O, error) {
		if id := keyID(in); fresh[id] > 0 {
			fresh[id]--
			var zero O
			return zero, notFound(id)
		}
		return inner(in)
	}
}

func importFresh(l *ledger, window time.Duration, replicas ...Regional) (*Result, error) {
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{}}
	im := &Importer{KMS: l, Token: tok, Now: func() time.Time { return now }, Replicas: replicas, ConsistencyWindow: window}
	return im.Run(context.Background(), Request{KeyLabel: "ec", Generate: true, MultiRegion: len(replicas) > 0,
		WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}})
}

func TestNotFoundForAKeyJustCreatedIsWaitedOut(t *testing.T) {
	l := newLedger()
	fresh := map[string]int{"key-1": 2}
	unknownFor(&l.getParametersForImport, func(in *kms.GetParametersForImportInput) string { return aws.ToString(in.KeyId) }, fresh)
	res, err := importFresh(l, time.Minute)
	if err != nil {
		t.Fatalf("import of a key KMS did not know for two calls: %v", err)
	}
	var summary string
	for _, s := range res.Steps {
		if s.Name == StepGetParameters {
			summary = s.Summary
		}
	}
	if res.KeyId != "key-1" || len(l.keys) != 1 || !strings.Contains(summary, "eventual consistency") {
		t.Errorf("key %s, %d keys, get-parameters summary %q", res.KeyId, len(l.keys), summary)
	}
}

func TestNotFoundForAFreshKeyIsBounded(t *testing.T) {
	l := newLedger()
	fresh := map[string]int{"key-1": 1 << 30}
	unknownFor(&l.getParametersForImport, func(in *kms.GetParametersForImportInput) string { return aws.ToString(in.KeyId) }, fresh)
	_, err := importFresh(l, time.Second)
	if err == nil || strings.Contains(err.Error(), "check --kms-key-id") || !strings.Contains(err.Error(), "eventually consistent") || !strings.Contains(err.Error(), "run the same command again") {
		t.Fatalf("got %v, want a bounded wait that says KMS has not caught up", err)
	}
	if len(l.keys) != 1 {
		t.Errorf("%d keys", len(l.keys))
	}
}

func TestNotFoundForAKeyTheUserNamedIsNotWaited(t *testing.T) {
	l := newLedger()
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("k", 0x0a)}}
	im := &Importer{KMS: l, Token: tok, Now: func() time.Time { return now }}
	start := time.Now()
	_, err := im.Run(context.Background(), Request{KeyLabel: "k", KMSKeyID: "nope", WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}})
	if err == nil || !strings.Contains(err.Error(), "check --kms-key-id") || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %s, want at once the advice to check --kms-key-id", err, time.Since(start))
	}
}

func TestReplicaUnknownInItsRegionIsWaitedOut(t *testing.T) {
	home, west := newLedger(), newLedger()
	home.replicateTo("us-west-2", west)
	fresh := map[string]int{"mrk-key-1": 2}
	unknownFor(&west.describeKey, func(in *kms.DescribeKeyInput) string { return aws.ToString(in.KeyId) }, fresh)
	res, err := importFresh(home, time.Minute, Regional{Region: "us-west-2", KMS: west})
	if err != nil {
		t.Fatalf("replica unknown in its Region for two DescribeKeys: %v", err)
	}
	if len(res.Replicas) != 1 || west.keys[res.KeyId].md.KeyState != types.KeyStateEnabled || fresh["mrk-key-1"] != 0 {
		t.Errorf("replicas %+v", res.Replicas)
	}
}

// lostCreate makes CreateKey take effect but lose its answer (a 500), and
// ListKeys not list the new key for its first hidden calls.
func lostCreate(l *ledger, hidden int) *int {
	creates := 0
	create := l.createKey
	l.createKey = func(in *kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
		creates++
		if _, err := create(in); err != nil {
			return nil, err
		}
		return nil, &smithy.GenericAPIError{Code: "KMSInternalException", Message: "lost"}
	}
	list := l.listKeys
	l.listKeys = func(in *kms.ListKeysInput) (*kms.ListKeysOutput, error) {
		if hidden > 0 {
			hidden--
			return &kms.ListKeysOutput{}, nil
		}
		return list(in)
	}
	return &creates
}

func TestLostCreateKeyIsFoundOnceKMSListsIt(t *testing.T) {
	l := newLedger()
	creates := lostCreate(l, 2)
	res, err := importFresh(l, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if *creates != 1 || len(l.keys) != 1 || res.KeyId != "key-1" {
		t.Errorf("CreateKey called %d times, %d keys, result key %s", *creates, len(l.keys), res.KeyId)
	}
}

func TestLostCreateKeyNeverListedStopsInsteadOfCreatingAgain(t *testing.T) {
	l := newLedger()
	creates := lostCreate(l, 1<<30)
	_, err := importFresh(l, time.Second)
	var lost *LostError
	if !errors.As(err, &lost) || lost.Op != "CreateKey" {
		t.Fatalf("got %v, want the CreateKey's outcome reported unknown", err)
	}
	if *creates != 1 || len(l.keys) != 1 {
		t.Errorf("CreateKey called %d times (%d keys): a key ListKeys does not list yet is no proof none was made", *creates, len(l.keys))
	}
}
