package kmsemu

import (
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func TestCreateKey(t *testing.T) {
	e := newEnv(t, Options{Region: "eu-west-3", AccountID: "123456789012"})
	tests := []struct {
		name      string
		in        kms.CreateKeyInput
		wantState types.KeyState
		code      string
		msg       string
	}{
		{name: "ok EXTERNAL starts PendingImport", in: kms.CreateKeyInput{Origin: types.OriginTypeExternal}, wantState: types.KeyStatePendingImport},
		{name: "ok AWS_KMS by default, Enabled", in: kms.CreateKeyInput{}, wantState: types.KeyStateEnabled},
		{name: "ok explicit SYMMETRIC_DEFAULT and ENCRYPT_DECRYPT", in: kms.CreateKeyInput{KeySpec: types.KeySpecSymmetricDefault, KeyUsage: types.KeyUsageTypeEncryptDecrypt, MultiRegion: aws.Bool(false)}, wantState: types.KeyStateEnabled},
		{name: "ok deprecated CustomerMasterKeySpec", in: kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecSymmetricDefault}, wantState: types.KeyStateEnabled},
		{name: "fail RSA_2048 key spec not emulated yet", in: kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify}, code: "UnsupportedOperationException", msg: "doesn't support KeySpec RSA_2048"},
		{name: "fail HMAC_256 key spec not emulated yet", in: kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac, Origin: types.OriginTypeExternal}, code: "UnsupportedOperationException", msg: "doesn't support KeySpec HMAC_256"},
		{name: "fail unknown key spec", in: kms.CreateKeyInput{KeySpec: "AES_512"}, code: "ValidationException", msg: "keySpec"},
		{name: "fail KeySpec with CustomerMasterKeySpec", in: kms.CreateKeyInput{KeySpec: types.KeySpecSymmetricDefault, CustomerMasterKeySpec: types.CustomerMasterKeySpecSymmetricDefault}, code: "ValidationException", msg: "CustomerMasterKeySpec"},
		{name: "fail SIGN_VERIFY with SYMMETRIC_DEFAULT", in: kms.CreateKeyInput{KeyUsage: types.KeyUsageTypeSignVerify}, code: "ValidationException", msg: "SIGN_VERIFY"},
		{name: "fail multi-Region", in: kms.CreateKeyInput{MultiRegion: aws.Bool(true)}, code: "UnsupportedOperationException", msg: "multi-Region"},
		{name: "fail custom key store origin", in: kms.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm}, code: "UnsupportedOperationException", msg: "AWS_CLOUDHSM"},
		{name: "fail reserved tag prefix", in: kms.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("aws:owner"), TagValue: aws.String("x")}}}, code: "TagException", msg: "aws:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := e.kms.CreateKey(ctx, &tt.in)
			if tt.code != "" {
				wantErr(t, err, tt.code, tt.msg)
				return
			}
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			if md := out.KeyMetadata; md.KeyState != tt.wantState || md.Enabled != (tt.wantState == types.KeyStateEnabled) {
				t.Errorf("KeyState %s Enabled %v, want %s", md.KeyState, md.Enabled, tt.wantState)
			}
		})
	}
}

// TestDescribeKeyMetadata checks every KeyMetadata field the emulator
// promises, for a key before and after import.
func TestDescribeKeyMetadata(t *testing.T) {
	e := newEnv(t, Options{Region: "eu-west-3", AccountID: "123456789012"})
	out, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, Description: aws.String("ceremony key")})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.KeyMetadata.KeyId)
	if !uuidRE.MatchString(id) {
		t.Fatalf("KeyId %q is not a UUID", id)
	}
	md := e.describe(t, id)
	want := types.KeyMetadata{
		AWSAccountId:          aws.String("123456789012"),
		KeyId:                 aws.String(id),
		Arn:                   aws.String("arn:aws:kms:eu-west-3:123456789012:key/" + id),
		Description:           aws.String("ceremony key"),
		KeyUsage:              types.KeyUsageTypeEncryptDecrypt,
		KeyState:              types.KeyStatePendingImport,
		Origin:                types.OriginTypeExternal,
		KeyManager:            types.KeyManagerTypeCustomer,
		KeySpec:               types.KeySpecSymmetricDefault,
		CustomerMasterKeySpec: types.CustomerMasterKeySpecSymmetricDefault,
		MultiRegion:           aws.Bool(false),
	}
	checkMetadata(t, md, want)
	if !aws.ToTime(md.CreationDate).Equal(testBase) {
		t.Errorf("CreationDate = %v, want %v", aws.ToTime(md.CreationDate), testBase)
	}
	if !slices.Equal(md.EncryptionAlgorithms, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}) {
		t.Errorf("EncryptionAlgorithms = %v", md.EncryptionAlgorithms)
	}
	if md.ExpirationModel != "" || md.ValidTo != nil || md.CurrentKeyMaterialId != nil || md.DeletionDate != nil {
		t.Errorf("key without material reports ExpirationModel %q ValidTo %v material %v DeletionDate %v", md.ExpirationModel, md.ValidTo, md.CurrentKeyMaterialId, md.DeletionDate)
	}

	matID := e.importOK(t, id, randBytes(t, 32))
	md = e.describe(t, id)
	want.Enabled, want.KeyState, want.ExpirationModel, want.CurrentKeyMaterialId = true, types.KeyStateEnabled, types.ExpirationModelTypeKeyMaterialExpires, aws.String(matID)
	checkMetadata(t, md, want)
	if !aws.ToTime(md.ValidTo).Equal(testBase.Add(24 * time.Hour)) {
		t.Errorf("ValidTo = %v", aws.ToTime(md.ValidTo))
	}

	if _, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(10)}); err != nil {
		t.Fatal(err)
	}
	md = e.describe(t, id)
	want.Enabled, want.KeyState, want.PendingDeletionWindowInDays = false, types.KeyStatePendingDeletion, aws.Int32(10)
	checkMetadata(t, md, want)
	if !aws.ToTime(md.DeletionDate).Equal(testBase.Add(10 * 24 * time.Hour)) {
		t.Errorf("DeletionDate = %v", aws.ToTime(md.DeletionDate))
	}
}

func checkMetadata(t *testing.T, got *types.KeyMetadata, want types.KeyMetadata) {
	t.Helper()
	s, w := aws.ToString, aws.ToString
	if s(got.AWSAccountId) != w(want.AWSAccountId) || s(got.KeyId) != w(want.KeyId) || s(got.Arn) != w(want.Arn) ||
		s(got.Description) != w(want.Description) || got.Enabled != want.Enabled || got.KeyUsage != want.KeyUsage ||
		got.KeyState != want.KeyState || got.Origin != want.Origin || got.KeyManager != want.KeyManager ||
		got.KeySpec != want.KeySpec || got.CustomerMasterKeySpec != want.CustomerMasterKeySpec ||
		aws.ToBool(got.MultiRegion) != aws.ToBool(want.MultiRegion) || got.MultiRegion == nil ||
		got.ExpirationModel != want.ExpirationModel || s(got.CurrentKeyMaterialId) != w(want.CurrentKeyMaterialId) ||
		aws.ToInt32(got.PendingDeletionWindowInDays) != aws.ToInt32(want.PendingDeletionWindowInDays) {
		t.Errorf("KeyMetadata:\n got %+v\nwant %+v", *got, want)
	}
}

func TestDescribeKeyReferences(t *testing.T) {
	e := newEnv(t, Options{})
	keyID := e.externalKey(t)
	if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/ceremony"), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, ref, code string
	}{
		{"ok key ID", keyID, ""},
		{"ok key ARN", e.srv.keyARN(keyID), ""},
		{"ok alias name", "alias/ceremony", ""},
		{"ok alias ARN", e.srv.aliasARN("alias/ceremony"), ""},
		{"fail unknown alias", "alias/nope", "NotFoundException"},
		{"fail unknown key", unknownKey(t), "NotFoundException"},
		{"fail not a key id", "my-key", "NotFoundException"},
		{"fail ARN of another region", "arn:aws:kms:eu-west-1:111122223333:key/" + keyID, "NotFoundException"},
		{"fail ARN of another service", "arn:aws:iam::111122223333:role/x", "InvalidArnException"},
		{"fail ARN without a resource type", "arn:aws:kms:us-east-1:111122223333:" + keyID, "InvalidArnException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(tt.ref)})
			if tt.code != "" {
				wantErr(t, err, tt.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.KeyMetadata.KeyId) != keyID {
				t.Errorf("KeyId = %s, want %s", aws.ToString(out.KeyMetadata.KeyId), keyID)
			}
		})
	}
}

func TestListKeysPages(t *testing.T) {
	e := newEnv(t, Options{})
	var want []string
	for range 5 {
		want = append(want, aws.ToString(e.createKey(t, types.OriginTypeExternal).KeyId))
	}
	var got []string
	pages := 0
	p := kms.NewListKeysPaginator(e.kms, &kms.ListKeysInput{Limit: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, k := range out.Keys {
			got = append(got, aws.ToString(k.KeyId))
			if aws.ToString(k.KeyArn) != e.srv.keyARN(aws.ToString(k.KeyId)) {
				t.Errorf("KeyArn = %s", aws.ToString(k.KeyArn))
			}
		}
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Errorf("ListKeys in %d pages = %v, want 3 pages of %v", pages, got, want)
	}
	_, err := e.kms.ListKeys(ctx, &kms.ListKeysInput{Marker: aws.String("forged")})
	wantErr(t, err, "InvalidMarkerException")
	_, err = e.kms.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(0)})
	wantErr(t, err, "ValidationException", "limit")
}

func TestEnableDisableKey(t *testing.T) {
	e := newEnv(t, Options{})
	keyID, _ := e.importedKey(t)
	for _, step := range []struct {
		name string
		call func() error
		want types.KeyState
	}{
		{"ok disable", func() error {
			_, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
			return err
		}, types.KeyStateDisabled},
		{"ok disable again", func() error {
			_, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)})
			return err
		}, types.KeyStateDisabled},
		{"ok enable by ARN", func() error {
			_, err := e.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(e.srv.keyARN(keyID))})
			return err
		}, types.KeyStateEnabled},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.call(); err != nil {
				t.Fatal(err)
			}
			if st := e.describe(t, keyID).KeyState; st != step.want {
				t.Errorf("KeyState = %s, want %s", st, step.want)
			}
		})
	}
	t.Run("fail enable a key pending import", func(t *testing.T) {
		_, err := e.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(e.externalKey(t))})
		wantErr(t, err, "KMSInvalidStateException")
	})
	t.Run("fail enable by alias", func(t *testing.T) {
		_, err := e.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(e.aliasedKey(t))})
		wantErr(t, err, "NotFoundException")
	})
}

func TestKeyDeletion(t *testing.T) {
	e := newEnv(t, Options{})
	t.Run("ok default window is 30 days; cancel leaves the key Disabled", func(t *testing.T) {
		keyID, _ := e.importedKey(t)
		out, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(out.PendingWindowInDays) != 30 || out.KeyState != types.KeyStatePendingDeletion ||
			!aws.ToTime(out.DeletionDate).Equal(e.now().Add(30*24*time.Hour)) || aws.ToString(out.KeyId) != e.srv.keyARN(keyID) {
			t.Errorf("ScheduleKeyDeletion = %+v", *out)
		}
		_, err = e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID)})
		wantErr(t, err, "KMSInvalidStateException")
		if _, err := e.kms.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		if md := e.describe(t, keyID); md.KeyState != types.KeyStateDisabled || md.DeletionDate != nil {
			t.Errorf("after cancel: %s, DeletionDate %v", md.KeyState, md.DeletionDate)
		}
	})
	t.Run("ok cancel on a key without material leaves it PendingImport", func(t *testing.T) {
		keyID := e.pendingDeletionKey(t)
		if _, err := e.kms.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		if st := e.describe(t, keyID).KeyState; st != types.KeyStatePendingImport {
			t.Errorf("KeyState = %s", st)
		}
	})
	for _, tt := range []struct {
		name string
		days int32
	}{{"fail window of 6 days", 6}, {"fail window of 31 days", 31}} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(e.externalKey(t)), PendingWindowInDays: aws.Int32(tt.days)})
			wantErr(t, err, "ValidationException", "between 7 and 30")
		})
	}
	t.Run("fail cancel a key not pending deletion", func(t *testing.T) {
		_, err := e.kms.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(e.externalKey(t))})
		wantErr(t, err, "KMSInvalidStateException", "not pending deletion")
	})
	t.Run("ok the key, its aliases and its ciphertexts are gone once the window passes", func(t *testing.T) {
		keyID, _ := e.importedKey(t)
		blob := e.encrypt(t, keyID, []byte("x"), nil)
		if _, err := e.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/doomed"), TargetKeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Fatal(err)
		}
		e.advance(t, 7*24*time.Hour-time.Second)
		if st := e.describe(t, keyID).KeyState; st != types.KeyStatePendingDeletion {
			t.Fatalf("before the deletion date: %s", st)
		}
		e.advance(t, time.Second)
		_, err := e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		wantErr(t, err, "NotFoundException")
		_, err = e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/doomed")})
		wantErr(t, err, "NotFoundException")
		_, err = e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
		wantErr(t, err, "NotFoundException")
		list, err := e.kms.ListKeys(ctx, &kms.ListKeysInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range list.Keys {
			if aws.ToString(k.KeyId) == keyID {
				t.Error("ListKeys still lists the deleted key")
			}
		}
	})
}
