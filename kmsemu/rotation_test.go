package kmsemu

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// importNew imports material as NEW_KEY_MATERIAL (on-demand rotation) and
// returns its KeyMaterialId.
func (e *env) importNew(t *testing.T, keyID string, material []byte, desc string) string {
	t.Helper()
	in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, material)
	in.ImportType = types.ImportTypeNewKeyMaterial
	if desc != "" {
		in.KeyMaterialDescription = aws.String(desc)
	}
	out, err := e.kms.ImportKeyMaterial(ctx, in)
	if err != nil {
		t.Fatalf("ImportKeyMaterial NEW_KEY_MATERIAL: %v", err)
	}
	return aws.ToString(out.KeyMaterialId)
}

func (e *env) rotations(t *testing.T, keyID string, include types.IncludeKeyMaterial) []types.RotationsListEntry {
	t.Helper()
	out, err := e.kms.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyID), IncludeKeyMaterial: include})
	if err != nil {
		t.Fatalf("ListKeyRotations: %v", err)
	}
	return out.Rotations
}

func (e *env) rotate(t *testing.T, keyID string) {
	t.Helper()
	if _, err := e.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("RotateKeyOnDemand: %v", err)
	}
}

// matStates summarises ListKeyRotations entries as id:state:importState.
func matStates(rs []types.RotationsListEntry) []string {
	var out []string
	for _, r := range rs {
		out = append(out, aws.ToString(r.KeyMaterialId)[:8]+":"+string(r.KeyMaterialState)+":"+string(r.ImportState))
	}
	return out
}

func wantStates(t *testing.T, got []types.RotationsListEntry, want ...string) {
	t.Helper()
	g := matStates(got)
	if len(g) != len(want) {
		t.Fatalf("materials %v, want %v", g, want)
	}
	for i := range want {
		if g[i] != want[i] {
			t.Fatalf("materials %v, want %v", g, want)
		}
	}
}

func TestOnDemandRotationOfImportedMaterial(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	keyID, m1 := e.importedKey(t)
	id1 := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId)
	c1 := e.encrypt(t, keyID, []byte("generation 1"), nil)

	m2 := randBytes(t, 32)
	id2 := e.importNew(t, keyID, m2, "gen 2 from HSM")
	if id2 == id1 || !hex64.MatchString(id2) {
		t.Fatalf("new KeyMaterialId %q (first was %s)", id2, id1)
	}
	if md := e.describe(t, keyID); aws.ToString(md.CurrentKeyMaterialId) != id1 || md.KeyState != types.KeyStateEnabled {
		t.Fatalf("after NEW import: current %s state %s, want %s Enabled", aws.ToString(md.CurrentKeyMaterialId), md.KeyState, id1)
	}
	all := e.rotations(t, keyID, types.IncludeKeyMaterialAllKeyMaterial)
	wantStates(t, all, id1[:8]+":CURRENT:IMPORTED", id2[:8]+":PENDING_ROTATION:IMPORTED")
	if p := all[1]; aws.ToString(p.KeyMaterialDescription) != "gen 2 from HSM" || p.RotationDate != nil || p.RotationType != "" ||
		p.ExpirationModel != types.ExpirationModelTypeKeyMaterialExpires || !aws.ToTime(p.ValidTo).Equal(e.now().Add(24*time.Hour)) {
		t.Errorf("pending entry %+v", p)
	}
	if r := e.rotations(t, keyID, ""); len(r) != 0 {
		t.Errorf("ROTATIONS_ONLY before any rotation: %v", matStates(r))
	}

	t.Run("fail a second NEW import while one is pending", func(t *testing.T) {
		in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, randBytes(t, 32))
		in.ImportType = types.ImportTypeNewKeyMaterial
		_, err := e.kms.ImportKeyMaterial(ctx, in)
		wantErr(t, err, "KMSInvalidStateException", "pending rotation")
	})

	e.rotate(t, keyID)
	st, err := e.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyID)})
	if err != nil || !aws.ToTime(st.OnDemandRotationStartDate).Equal(e.now()) {
		t.Errorf("GetKeyRotationStatus during rotation = %+v, %v", st, err)
	}
	if cur := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId); cur != id1 {
		t.Errorf("rotation finished at once: current %s, want %s until the delay passes", cur, id1)
	}
	_, err = e.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)})
	wantErr(t, err, "ConflictException", "in progress")

	e.advance(t, defaultRotationDelay)
	if cur := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId); cur != id2 {
		t.Fatalf("after the rotation delay: current %s, want %s", cur, id2)
	}
	all = e.rotations(t, keyID, types.IncludeKeyMaterialAllKeyMaterial)
	wantStates(t, all, id1[:8]+":NON_CURRENT:IMPORTED", id2[:8]+":CURRENT:IMPORTED")
	if r := all[1]; r.RotationType != types.RotationTypeOnDemand || !aws.ToTime(r.RotationDate).Equal(e.now()) {
		t.Errorf("rotated entry: RotationType %q RotationDate %v, want ON_DEMAND at %v", r.RotationType, aws.ToTime(r.RotationDate), e.now())
	}
	if all[0].RotationDate != nil || all[0].RotationType != "" {
		t.Errorf("first material has rotation fields: %+v", all[0])
	}
	wantStates(t, e.rotations(t, keyID, types.IncludeKeyMaterialRotationsOnly), id2[:8]+":CURRENT:IMPORTED")
	if st, _ := e.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(keyID)}); st == nil || st.OnDemandRotationStartDate != nil {
		t.Errorf("GetKeyRotationStatus after the rotation = %+v", st)
	}

	t.Run("ok old and new ciphertexts decrypt, each naming its material", func(t *testing.T) {
		c2 := e.encrypt(t, keyID, []byte("generation 2"), nil)
		for _, tt := range []struct {
			blob  []byte
			plain string
			id    string
		}{{c1, "generation 1", id1}, {c2, "generation 2", id2}} {
			out, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: tt.blob})
			if err != nil || string(out.Plaintext) != tt.plain || aws.ToString(out.KeyMaterialId) != tt.id {
				t.Errorf("Decrypt = %q %s, %v; want %q %s", out.Plaintext, aws.ToString(out.KeyMaterialId), err, tt.plain, tt.id)
			}
		}
	})
	t.Run("ok check value of each material", func(t *testing.T) {
		var out kcvOutput
		e.rawOK(t, "KmsBridgeGetKeyCheckValue", map[string]string{"KeyId": keyID, "KeyMaterialId": id1}, &out)
		if out.KeyCheckValue != keyCheckValue(m1) || out.KeyMaterialId != id1 {
			t.Errorf("check value of %s = %+v", id1, out)
		}
		if got := e.kcv(t, keyID); got.KeyCheckValue != keyCheckValue(m2) || got.KeyMaterialId != id2 {
			t.Errorf("check value of the current material = %+v", got)
		}
	})
	t.Run("fail NEW import of material the key already has", func(t *testing.T) {
		in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, m1)
		in.ImportType = types.ImportTypeNewKeyMaterial
		_, err := e.kms.ImportKeyMaterial(ctx, in)
		wantErr(t, err, "IncorrectKeyMaterialException", id1)
	})
	t.Run("fail EXISTING import naming a material with other material", func(t *testing.T) {
		in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, m2)
		in.ImportType, in.KeyMaterialId = types.ImportTypeExistingKeyMaterial, aws.String(id1)
		_, err := e.kms.ImportKeyMaterial(ctx, in)
		wantErr(t, err, "IncorrectKeyMaterialException")
	})
	t.Run("fail RotateKeyOnDemand with nothing pending", func(t *testing.T) {
		_, err := e.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)})
		wantErr(t, err, "KMSInvalidStateException", "No available key material pending rotation")
	})
}

// TestNonCurrentMaterialExpiry: when any associated material expires the key
// is PendingImport; re-importing that material by KeyMaterialId brings it
// back. DescribeKey's ValidTo is the earliest expiry.
func TestNonCurrentMaterialExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	keyID := e.externalKey(t)
	m1 := randBytes(t, 32)
	in := e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, m1)
	in.ValidTo = aws.Time(e.now().Add(time.Hour))
	if _, err := e.kms.ImportKeyMaterial(ctx, in); err != nil {
		t.Fatal(err)
	}
	id1 := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId)
	c1 := e.encrypt(t, keyID, []byte("one"), nil)
	id2 := e.importNew(t, keyID, randBytes(t, 32), "") // valid 24h
	e.rotate(t, keyID)
	e.advance(t, defaultRotationDelay)
	md := e.describe(t, keyID)
	if aws.ToString(md.CurrentKeyMaterialId) != id2 || !aws.ToTime(md.ValidTo).Equal(e.base.Add(time.Hour)) {
		t.Fatalf("current %s ValidTo %v, want %s and the first material's earlier ValidTo", aws.ToString(md.CurrentKeyMaterialId), aws.ToTime(md.ValidTo), id2)
	}

	e.advance(t, time.Hour)
	md = e.describe(t, keyID)
	if md.KeyState != types.KeyStatePendingImport || aws.ToString(md.CurrentKeyMaterialId) != id2 {
		t.Fatalf("after the NON_CURRENT material expired: %s current %s, want PendingImport, current kept", md.KeyState, aws.ToString(md.CurrentKeyMaterialId))
	}
	wantStates(t, e.rotations(t, keyID, types.IncludeKeyMaterialAllKeyMaterial), id1[:8]+":NON_CURRENT:PENDING_IMPORT", id2[:8]+":CURRENT:IMPORTED")
	_, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x")})
	wantErr(t, err, "KMSInvalidStateException")

	t.Run("fail re-import without KeyMaterialId compares with the current material", func(t *testing.T) {
		_, err := e.kms.ImportKeyMaterial(ctx, e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, m1))
		wantErr(t, err, "IncorrectKeyMaterialException", "current key material")
	})
	in = e.importInput(t, keyID, types.AlgorithmSpecRsaesOaepSha256, m1)
	in.ImportType, in.KeyMaterialId = types.ImportTypeExistingKeyMaterial, aws.String(id1)
	if out, err := e.kms.ImportKeyMaterial(ctx, in); err != nil || aws.ToString(out.KeyMaterialId) != id1 {
		t.Fatalf("re-import of %s: %v", id1, err)
	}
	if st := e.describe(t, keyID).KeyState; st != types.KeyStateEnabled {
		t.Fatalf("after re-import: %s", st)
	}
	if out, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: c1}); err != nil || string(out.Plaintext) != "one" {
		t.Errorf("Decrypt of a first-generation ciphertext: %v", err)
	}
}

func TestDeleteMaterialPendingRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	keyID, _ := e.importedKey(t)
	id1 := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId)
	id2 := e.importNew(t, keyID, randBytes(t, 32), "")
	out, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(keyID), KeyMaterialId: aws.String(id2)})
	if err != nil || aws.ToString(out.KeyMaterialId) != id2 {
		t.Fatalf("DeleteImportedKeyMaterial of the pending material: %v", err)
	}
	if st := e.describe(t, keyID).KeyState; st != types.KeyStateEnabled {
		t.Errorf("deleting material pending rotation made the key %s", st)
	}
	wantStates(t, e.rotations(t, keyID, types.IncludeKeyMaterialAllKeyMaterial), id1[:8]+":CURRENT:IMPORTED", id2[:8]+":PENDING_ROTATION:PENDING_IMPORT")
	_, err = e.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)})
	wantErr(t, err, "KMSInvalidStateException", "No available key material pending rotation")
	id3 := e.importNew(t, keyID, randBytes(t, 32), "")
	wantStates(t, e.rotations(t, keyID, types.IncludeKeyMaterialAllKeyMaterial), id1[:8]+":CURRENT:IMPORTED", id3[:8]+":PENDING_ROTATION:IMPORTED")

	t.Run("ok deleting pending material during the rotation abandons it", func(t *testing.T) {
		e.rotate(t, keyID)
		if _, err := e.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(keyID), KeyMaterialId: aws.String(id3)}); err != nil {
			t.Fatal(err)
		}
		e.advance(t, defaultRotationDelay)
		if cur := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId); cur != id1 {
			t.Errorf("current %s, want %s", cur, id1)
		}
	})
}

func TestOnDemandRotationLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RotationDelay: time.Second})
	t.Run("fail after 25 on-demand rotations", func(t *testing.T) {
		keyID, _ := e.importedKey(t)
		for range maxOnDemandRotations {
			e.importNew(t, keyID, randBytes(t, 32), "")
			e.rotate(t, keyID)
			e.advance(t, time.Second)
		}
		if n := len(e.rotations(t, keyID, types.IncludeKeyMaterialRotationsOnly)); n != maxOnDemandRotations {
			t.Fatalf("%d rotations listed, want %d", n, maxOnDemandRotations)
		}
		e.importNew(t, keyID, randBytes(t, 32), "")
		_, err := e.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)})
		wantErr(t, err, "LimitExceededException", "The on-demand rotations limit has been reached for the given keyId")
	})
	hmacKey := e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac)
	for _, tt := range []struct {
		name  string
		keyID string
		code  string
	}{
		{"fail HMAC key", hmacKey, "UnsupportedOperationException"},
		// [Recorded]: state before key type, a disabled key is DisabledException.
		{"fail disabled key", e.disabledKey(t), "DisabledException"},
		{"fail key pending import", e.externalKey(t), "KMSInvalidStateException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(tt.keyID)})
			wantErr(t, err, tt.code)
		})
	}
	t.Run("fail ListKeyRotations of an HMAC key", func(t *testing.T) {
		_, err := e.kms.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(hmacKey)})
		wantErr(t, err, "UnsupportedOperationException")
	})
	t.Run("ok AWS_KMS key rotates to generated material", func(t *testing.T) {
		keyID := e.awsKMSKey(t)
		c := e.encrypt(t, keyID, []byte("before"), nil)
		e.rotate(t, keyID)
		e.advance(t, time.Second)
		rs := e.rotations(t, keyID, types.IncludeKeyMaterialAllKeyMaterial)
		if len(rs) != 2 || rs[0].KeyMaterialState != types.KeyMaterialStateNonCurrent || rs[1].KeyMaterialState != types.KeyMaterialStateCurrent || rs[1].ImportState != "" {
			t.Fatalf("rotations %v", matStates(rs))
		}
		if out, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: c}); err != nil || string(out.Plaintext) != "before" {
			t.Errorf("Decrypt after rotation: %v", err)
		}
	})
}
