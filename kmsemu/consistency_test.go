package kmsemu

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestNewReplicaIsCreatingForAWhile: KMS replicates asynchronously; the
// replica is Creating, and unusable, until it is done.
func TestNewReplicaIsCreatingForAWhile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{ReplicaCreating: 3 * time.Second})
	eu := regionClient(e.url, "eu-west-1")
	created, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.KeyMetadata.KeyId)
	out, err := e.kms.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: aws.String(id), ReplicaRegion: aws.String("eu-west-1")})
	if err != nil {
		t.Fatal(err)
	}
	if s := out.ReplicaKeyMetadata.KeyState; s != types.KeyStateCreating {
		t.Errorf("ReplicateKey answered a replica %s, want Creating", s)
	}
	if s := describeWith(t, eu, id).KeyState; s != types.KeyStateCreating {
		t.Errorf("replica is %s right after ReplicateKey, want Creating", s)
	}
	_, err = eu.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(id), WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	wantErr(t, err, "KMSInvalidStateException", "is creating.")
	e.advance(t, 3*time.Second)
	if s := describeWith(t, eu, id).KeyState; s != types.KeyStatePendingImport {
		t.Errorf("replica is %s once created, want PendingImport", s)
	}
}

// TestFreshKeyIsUnknownForAWhile: with FreshKeyUnknownFor, a key just
// created or replicated is NotFoundException and not listed, then known.
func TestFreshKeyIsUnknownForAWhile(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{FreshKeyUnknownFor: 2 * time.Second})
	created, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.KeyMetadata.KeyId)
	_, err = e.kms.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(id), WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	wantErr(t, err, "NotFoundException", "does not exist")
	if l, err := e.kms.ListKeys(ctx, &kms.ListKeysInput{}); err != nil || len(l.Keys) != 0 {
		t.Errorf("ListKeys lists %d keys right after CreateKey (%v), want none yet", len(l.Keys), err)
	}
	e.advance(t, 2*time.Second)
	if s := describeWith(t, e.kms, id).KeyState; s != types.KeyStatePendingImport {
		t.Errorf("key is %s", s)
	}
	if _, err := e.kms.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: aws.String(id), ReplicaRegion: aws.String("eu-west-1")}); err != nil {
		t.Fatal(err)
	}
	eu := regionClient(e.url, "eu-west-1")
	_, err = eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	wantErr(t, err, "NotFoundException")
	e.advance(t, 2*time.Second)
	describeWith(t, eu, id)
}

// TestSetConsistencyAtRunTime: KmsBridgeSetConsistency turns the
// eventual-consistency answers on for keys made from then on.
func TestSetConsistencyAtRunTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	before := e.externalKey(t)
	var out struct{ FreshKeyUnknownMillis, ReplicaCreatingMillis int64 }
	e.rawOK(t, "KmsBridgeSetConsistency", map[string]any{"FreshKeyUnknownMillis": 1000}, &out)
	if out.FreshKeyUnknownMillis != 1000 || out.ReplicaCreatingMillis != 0 {
		t.Errorf("settings %+v", out)
	}
	after := e.externalKey(t)
	describeWith(t, e.kms, before)
	_, err := e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(after)})
	wantErr(t, err, "NotFoundException")
	e.advance(t, time.Second)
	describeWith(t, e.kms, after)
}

// TestPrimaryWithReplicasWaitsForTheirDeletion: a primary scheduled for
// deletion while it has replicas is PendingReplicaDeletion, without a
// DeletionDate, until the last replica is deleted.
func TestPrimaryWithReplicasWaitsForTheirDeletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	eu := regionClient(e.url, "eu-west-1")
	created, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.KeyMetadata.KeyId)
	replicate(t, e.kms, id, "eu-west-1")
	out, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	if out.KeyState != types.KeyStatePendingReplicaDeletion || out.DeletionDate != nil {
		t.Errorf("ScheduleKeyDeletion of a primary with a replica: %s, DeletionDate %v", out.KeyState, out.DeletionDate)
	}
	if _, err := eu.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	e.advance(t, 8*24*time.Hour)
	md := describeWith(t, e.kms, id)
	if md.KeyState != types.KeyStatePendingDeletion || md.DeletionDate == nil {
		t.Fatalf("primary after its replica was deleted: %s, DeletionDate %v", md.KeyState, md.DeletionDate)
	}
	e.advance(t, 8*24*time.Hour)
	_, err = e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	wantErr(t, err, "NotFoundException")
}
