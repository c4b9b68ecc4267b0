package kmsemu

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// importWith imports material into keyID through client c (so in c's
// Region), with fresh RSA_2048 parameters from that Region.
func (e *env) importWith(t *testing.T, c *kms.Client, keyID string, material []byte, importType types.ImportType) (string, error) {
	t.Helper()
	p, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId: aws.String(keyID), WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048,
	})
	if err != nil {
		t.Fatalf("GetParametersForImport: %v", err)
	}
	out, err := c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(keyID), ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrap(t, p.PublicKey, types.AlgorithmSpecRsaesOaepSha256, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire, ImportType: importType,
	})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.KeyMaterialId), nil
}

func describeWith(t *testing.T, c *kms.Client, keyID string) *types.KeyMetadata {
	t.Helper()
	out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("DescribeKey: %v", err)
	}
	return out.KeyMetadata
}

func replicate(t *testing.T, c *kms.Client, keyID, region string) *types.KeyMetadata {
	t.Helper()
	out, err := c.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: aws.String(keyID), ReplicaRegion: aws.String(region)})
	if err != nil {
		t.Fatalf("ReplicateKey to %s: %v", region, err)
	}
	return out.ReplicaKeyMetadata
}

func stateOf(t *testing.T, c *kms.Client, keyID, matID string) types.KeyMaterialState {
	t.Helper()
	out, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyID), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	if err != nil {
		t.Fatalf("ListKeyRotations: %v", err)
	}
	for _, r := range out.Rotations {
		if aws.ToString(r.KeyMaterialId) == matID {
			return r.KeyMaterialState
		}
	}
	return ""
}

func TestMultiRegionImportedKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	us, eu, ap := e.kms, regionClient(e.url, "eu-west-1"), regionClient(e.url, "ap-south-1")
	created, err := us.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatalf("CreateKey MultiRegion: %v", err)
	}
	md := created.KeyMetadata
	id := aws.ToString(md.KeyId)
	if !mrkIDRE.MatchString(id) || !aws.ToBool(md.MultiRegion) || md.MultiRegionConfiguration == nil ||
		md.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypePrimary ||
		aws.ToString(md.MultiRegionConfiguration.PrimaryKey.Region) != "us-east-1" || len(md.MultiRegionConfiguration.ReplicaKeys) != 0 {
		t.Fatalf("CreateKey MultiRegion = %s %+v", id, md.MultiRegionConfiguration)
	}
	m1 := randBytes(t, 32)
	id1, err := e.importWith(t, us, id, m1, "")
	if err != nil {
		t.Fatal(err)
	}

	rep := replicate(t, us, id, "eu-west-1")
	if aws.ToString(rep.KeyId) != id || aws.ToString(rep.Arn) != "arn:aws:kms:eu-west-1:111122223333:key/"+id ||
		rep.KeyState != types.KeyStatePendingImport || rep.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypeReplica {
		t.Fatalf("replica %s %s %s", aws.ToString(rep.Arn), rep.KeyState, rep.MultiRegionConfiguration.MultiRegionKeyType)
	}
	replicate(t, us, id, "ap-south-1")
	cfg := describeWith(t, us, id).MultiRegionConfiguration
	if len(cfg.ReplicaKeys) != 2 || aws.ToString(cfg.ReplicaKeys[0].Region) != "ap-south-1" || aws.ToString(cfg.ReplicaKeys[1].Region) != "eu-west-1" {
		t.Errorf("primary's ReplicaKeys = %+v", cfg.ReplicaKeys)
	}
	if cfg := describeWith(t, eu, id).MultiRegionConfiguration; aws.ToString(cfg.PrimaryKey.Arn) != aws.ToString(md.Arn) {
		t.Errorf("replica's PrimaryKey = %+v", cfg.PrimaryKey)
	}

	t.Run("fail other material into a replica", func(t *testing.T) {
		_, err := e.importWith(t, eu, id, randBytes(t, 32), "")
		wantErr(t, err, "IncorrectKeyMaterialException", "primary")
	})
	t.Run("fail an import token of another Region", func(t *testing.T) {
		p := e.params(t, id, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048) // us-east-1
		_, err := eu.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
			KeyId: aws.String(id), ImportToken: p.ImportToken,
			EncryptedKeyMaterial: wrap(t, p.PublicKey, types.AlgorithmSpecRsaesOaepSha256, m1),
			ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		})
		wantErr(t, err, "InvalidImportTokenException")
	})
	for _, c := range []*kms.Client{eu, ap} {
		got, err := e.importWith(t, c, id, m1, types.ImportTypeExistingKeyMaterial)
		if err != nil || got != id1 {
			t.Fatalf("same material into a replica: %s, %v; want KeyMaterialId %s", got, err, id1)
		}
	}
	if st := describeWith(t, eu, id).KeyState; st != types.KeyStateEnabled {
		t.Fatalf("replica after import: %s", st)
	}

	t.Run("ok encrypt in one Region, decrypt in another", func(t *testing.T) {
		enc, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("across regions")})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := eu.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		if err != nil || string(dec.Plaintext) != "across regions" || aws.ToString(dec.KeyId) != "arn:aws:kms:eu-west-1:111122223333:key/"+id {
			t.Errorf("Decrypt in eu-west-1 = %q %s, %v", dec.Plaintext, aws.ToString(dec.KeyId), err)
		}
	})
	t.Run("ok each Region has its own keys and aliases", func(t *testing.T) {
		for _, c := range []*kms.Client{us, eu} {
			if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/same-name"), TargetKeyId: aws.String(id)}); err != nil {
				t.Fatalf("CreateAlias: %v", err)
			}
		}
		single, err := eu.CreateKey(ctx, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(aws.ToString(single.KeyMetadata.Arn), "arn:aws:kms:eu-west-1:") {
			t.Errorf("key created in eu-west-1 has ARN %s", aws.ToString(single.KeyMetadata.Arn))
		}
		_, err = us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: single.KeyMetadata.KeyId})
		wantErr(t, err, "NotFoundException")
		keys, err := ap.ListKeys(ctx, &kms.ListKeysInput{})
		if err != nil || len(keys.Keys) != 1 || aws.ToString(keys.Keys[0].KeyId) != id {
			t.Errorf("ListKeys in ap-south-1 = %+v, %v", keys, err)
		}
	})

	// Rotation of a multi-Region key: new material into the primary, the
	// same into every replica, then rotate the primary.
	m2 := randBytes(t, 32)
	id2, err := e.importWith(t, us, id, m2, types.ImportTypeNewKeyMaterial)
	if err != nil {
		t.Fatal(err)
	}
	if st := stateOf(t, us, id, id2); st != types.KeyMaterialStatePendingMultiRegionImportAndRotation {
		t.Fatalf("new material with replicas lacking it: %s", st)
	}
	t.Run("fail new material directly into a replica", func(t *testing.T) {
		_, err := e.importWith(t, eu, id, randBytes(t, 32), types.ImportTypeNewKeyMaterial)
		wantErr(t, err, "UnsupportedOperationException", "primary")
	})
	_, err = us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
	wantErr(t, err, "KMSInvalidStateException", "replica")
	if _, err := e.importWith(t, eu, id, m2, types.ImportTypeExistingKeyMaterial); err != nil {
		t.Fatal(err)
	}
	if st := stateOf(t, us, id, id2); st != types.KeyMaterialStatePendingMultiRegionImportAndRotation {
		t.Fatalf("with one of two replicas: %s", st)
	}
	if _, err := e.importWith(t, ap, id, m2, types.ImportTypeExistingKeyMaterial); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*kms.Client{us, eu, ap} {
		if st := stateOf(t, c, id, id2); st != types.KeyMaterialStatePendingRotation {
			t.Fatalf("with every replica: %s", st)
		}
	}
	_, err = eu.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
	wantErr(t, err, "UnsupportedOperationException", "primary")
	if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	e.advance(t, defaultRotationDelay)
	for _, c := range []*kms.Client{us, eu, ap} {
		if cur := aws.ToString(describeWith(t, c, id).CurrentKeyMaterialId); cur != id2 || stateOf(t, c, id, id1) != types.KeyMaterialStateNonCurrent {
			t.Errorf("after rotating the primary: current %s, want %s everywhere", cur, id2)
		}
	}

	t.Run("ok UpdatePrimaryRegion", func(t *testing.T) {
		if _, err := us.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: aws.String(id), PrimaryRegion: aws.String("eu-west-1")}); err != nil {
			t.Fatal(err)
		}
		if typ := describeWith(t, eu, id).MultiRegionConfiguration.MultiRegionKeyType; typ != types.MultiRegionKeyTypePrimary {
			t.Errorf("eu-west-1 is %s", typ)
		}
		if typ := describeWith(t, us, id).MultiRegionConfiguration.MultiRegionKeyType; typ != types.MultiRegionKeyTypeReplica {
			t.Errorf("us-east-1 is %s", typ)
		}
	})
}

func TestMultiRegionAWSKMSKeyAndFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	us, eu := e.kms, regionClient(e.url, "eu-west-1")
	created, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(created.KeyMetadata.KeyId)
	enc := e.encrypt(t, id, []byte("shared"), nil)
	if rep := replicate(t, us, id, "eu-west-1"); rep.KeyState != types.KeyStateEnabled {
		t.Errorf("replica of an AWS_KMS key is %s, want Enabled", rep.KeyState)
	}
	if dec, err := eu.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc}); err != nil || string(dec.Plaintext) != "shared" {
		t.Errorf("replica Decrypt: %v", err)
	}
	single := e.awsKMSKey(t)
	for _, tt := range []struct {
		name, keyID, region, code string
	}{
		{"fail a single-Region key", single, "eu-west-1", "UnsupportedOperationException"},
		{"fail a second replica in one Region", id, "eu-west-1", "AlreadyExistsException"},
		{"fail the primary's own Region", id, "us-east-1", "ValidationException"},
		{"fail not a Region name", id, "Mars", "ValidationException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: aws.String(tt.keyID), ReplicaRegion: aws.String(tt.region)})
			wantErr(t, err, tt.code)
		})
	}
	t.Run("fail replicating a replica", func(t *testing.T) {
		_, err := eu.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: aws.String(id), ReplicaRegion: aws.String("ap-south-1")})
		wantErr(t, err, "UnsupportedOperationException", "primary")
	})
	t.Run("ok a request without a signature is served in the default Region", func(t *testing.T) {
		status, _, body := e.raw(t, "TrentService.DescribeKey", mustJSON(t, map[string]string{"KeyId": id}))
		if status != http.StatusOK || !strings.Contains(string(body), "arn:aws:kms:us-east-1:") {
			t.Errorf("HTTP %d %s", status, body)
		}
	})
	t.Run("ok the Region comes from the credential scope", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, "/", nil)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261130/eu-west-1/kms/aws4_request, SignedHeaders=host, Signature=00")
		if got := requestRegion(req); got != "eu-west-1" {
			t.Errorf("requestRegion = %q", got)
		}
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261130/eu-west-1/s3/aws4_request")
		if got := requestRegion(req); got != "" {
			t.Errorf("requestRegion of another service's scope = %q", got)
		}
	})
}
