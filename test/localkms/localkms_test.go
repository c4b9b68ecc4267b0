package localkms

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"hash"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// newClient returns a real aws-sdk-go-v2 KMS client pointed at endpoint.
func newClient(t *testing.T, endpoint string) *kms.Client {
	t.Helper()
	cfg, err := awsconfig.LoadDefaultConfig(t.Context(),
		awsconfig.WithRegion(Region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDLOCALKMS", "secret", "")),
	)
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) {
		o.BaseEndpoint = aws.String(endpoint)
	})
}

// errCode returns the AWS error code ("__type") of err, or "" if err is nil
// or carries none.
func errCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func wantErrCode(t *testing.T, err error, want string) {
	t.Helper()
	if got := errCode(err); got != want {
		t.Fatalf("error code = %q, want %q (err: %v)", got, want, err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func createExternalKey(t *testing.T, c *kms.Client) string {
	t.Helper()
	out, err := c.CreateKey(t.Context(), &kms.CreateKeyInput{
		Origin:  types.OriginTypeExternal,
		KeySpec: types.KeySpecSymmetricDefault,
	})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return *out.KeyMetadata.KeyId
}

type importParams struct {
	token []byte
	pub   *rsa.PublicKey
	alg   types.AlgorithmSpec
}

func getParams(t *testing.T, c *kms.Client, keyID string, alg types.AlgorithmSpec) importParams {
	t.Helper()
	out, err := c.GetParametersForImport(t.Context(), &kms.GetParametersForImportInput{
		KeyId:             aws.String(keyID),
		WrappingAlgorithm: alg,
		WrappingKeySpec:   types.WrappingKeySpecRsa2048,
	})
	if err != nil {
		t.Fatalf("GetParametersForImport(%s): %v", alg, err)
	}
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	if err != nil {
		t.Fatalf("PublicKey is not PKIX DER: %v", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("PublicKey is %T, want *rsa.PublicKey", pub)
	}
	if got := rsaPub.N.BitLen(); got != 2048 {
		t.Fatalf("wrapping key is %d bits, want 2048", got)
	}
	if len(out.ImportToken) == 0 {
		t.Fatal("empty ImportToken")
	}
	return importParams{token: out.ImportToken, pub: rsaPub, alg: alg}
}

// wrap encrypts material under the wrapping key the way an HSM would.
func wrap(t *testing.T, p importParams, material []byte) []byte {
	t.Helper()
	var (
		out []byte
		err error
	)
	switch p.alg {
	case types.AlgorithmSpecRsaesOaepSha1:
		out, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, p.pub, material, nil)
	case types.AlgorithmSpecRsaesOaepSha256:
		out, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, p.pub, material, nil)
	case types.AlgorithmSpecRsaesPkcs1V15:
		out, err = rsa.EncryptPKCS1v15(rand.Reader, p.pub, material)
	default:
		t.Fatalf("wrap: unsupported algorithm %s", p.alg)
	}
	if err != nil {
		t.Fatalf("wrap: %v", err)
	}
	return out
}

func importMaterial(t *testing.T, c *kms.Client, keyID string, alg types.AlgorithmSpec, material []byte) error {
	t.Helper()
	p := getParams(t, c, keyID, alg)
	_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(keyID),
		ImportToken:          p.token,
		EncryptedKeyMaterial: wrap(t, p, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	return err
}

func describe(t *testing.T, c *kms.Client, keyID string) *types.KeyMetadata {
	t.Helper()
	out, err := c.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("DescribeKey: %v", err)
	}
	return out.KeyMetadata
}

func encrypt(t *testing.T, c *kms.Client, keyID string, plaintext []byte) []byte {
	t.Helper()
	out, err := c.Encrypt(t.Context(), &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plaintext})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out.CiphertextBlob
}

func decrypt(t *testing.T, c *kms.Client, blob []byte) []byte {
	t.Helper()
	out, err := c.Decrypt(t.Context(), &kms.DecryptInput{CiphertextBlob: blob})
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	return out.Plaintext
}

// openCiphertext decrypts a local-kms symmetric ciphertext blob with the
// 32-byte key material we imported, proving local-kms really encrypts with
// that material. local-kms's blob layout (src/cmk/aes_encryption.go) is:
// len(arn) (1 byte) | key ARN | backing-key version (uint32 LE) |
// 12-byte GCM nonce | AES-256-GCM ciphertext+tag (no AAD without encryption
// context). Real KMS ciphertexts are opaque; this is emulator-specific.
func openCiphertext(t *testing.T, material, blob []byte) (arn string, plaintext []byte) {
	t.Helper()
	n := int(blob[0])
	arn = string(blob[1 : 1+n])
	if v := binary.LittleEndian.Uint32(blob[1+n : 5+n]); v != 0 {
		t.Fatalf("backing key version = %d, want 0", v)
	}
	block, err := aes.NewCipher(material)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	rest := blob[5+n:]
	plaintext, err = gcm.Open(nil, rest[:gcm.NonceSize()], rest[gcm.NonceSize():], nil)
	if err != nil {
		t.Fatalf("ciphertext does not open with the imported key material: %v", err)
	}
	return arn, plaintext
}

func keyARN(keyID string) string {
	return "arn:aws:kms:" + Region + ":" + AccountID + ":key/" + keyID
}

// TestImportRoundTrip is the harness's main self-test: the full BYOK flow
// with the real SDK, for each wrapping algorithm and expiration model.
func TestImportRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		alg        types.AlgorithmSpec
		expiration types.ExpirationModelType
	}{
		{types.AlgorithmSpecRsaesOaepSha1, types.ExpirationModelTypeKeyMaterialDoesNotExpire},
		{types.AlgorithmSpecRsaesOaepSha256, types.ExpirationModelTypeKeyMaterialDoesNotExpire},
		{types.AlgorithmSpecRsaesOaepSha1, types.ExpirationModelTypeKeyMaterialExpires},
		{types.AlgorithmSpecRsaesOaepSha256, types.ExpirationModelTypeKeyMaterialExpires},
		// Deprecated in real KMS, still accepted by local-kms.
		{types.AlgorithmSpecRsaesPkcs1V15, types.ExpirationModelTypeKeyMaterialDoesNotExpire},
	}
	for _, tc := range tests {
		t.Run(string(tc.alg)+"/"+string(tc.expiration), func(t *testing.T) {
			t.Parallel()
			c := newClient(t, Start(t))
			ctx := t.Context()

			created, err := c.CreateKey(ctx, &kms.CreateKeyInput{
				Origin:      types.OriginTypeExternal,
				KeySpec:     types.KeySpecSymmetricDefault,
				KeyUsage:    types.KeyUsageTypeEncryptDecrypt,
				Description: aws.String("kmsbridge harness self-test"),
			})
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			md := created.KeyMetadata
			keyID := *md.KeyId
			if *md.Arn != keyARN(keyID) {
				t.Errorf("Arn = %q, want %q", *md.Arn, keyARN(keyID))
			}
			if md.Origin != types.OriginTypeExternal || md.KeyState != types.KeyStatePendingImport || md.Enabled {
				t.Errorf("new key: Origin=%s KeyState=%s Enabled=%v, want EXTERNAL PendingImport false",
					md.Origin, md.KeyState, md.Enabled)
			}
			if md.KeySpec != types.KeySpecSymmetricDefault || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt {
				t.Errorf("new key: KeySpec=%s KeyUsage=%s", md.KeySpec, md.KeyUsage)
			}

			// Encrypt must fail before import.
			_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x")})
			wantErrCode(t, err, "KMSInvalidStateException")

			params, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
				KeyId:             aws.String(keyID),
				WrappingAlgorithm: tc.alg,
				WrappingKeySpec:   types.WrappingKeySpecRsa2048,
			})
			if err != nil {
				t.Fatalf("GetParametersForImport: %v", err)
			}
			if *params.KeyId != keyARN(keyID) {
				t.Errorf("GetParametersForImport KeyId = %q, want the ARN %q", *params.KeyId, keyARN(keyID))
			}
			if d := time.Until(*params.ParametersValidTo); d < 23*time.Hour || d > 25*time.Hour {
				t.Errorf("ParametersValidTo is %v from now, want ~24h", d)
			}
			pub, err := x509.ParsePKIXPublicKey(params.PublicKey)
			if err != nil {
				t.Fatalf("PublicKey: %v", err)
			}
			p := importParams{token: params.ImportToken, pub: pub.(*rsa.PublicKey), alg: tc.alg}
			if p.pub.N.BitLen() != 2048 || p.pub.E != 65537 {
				t.Errorf("wrapping key: %d bits, e=%d", p.pub.N.BitLen(), p.pub.E)
			}

			material := randomBytes(t, 32)
			in := &kms.ImportKeyMaterialInput{
				KeyId:                aws.String(keyID),
				ImportToken:          p.token,
				EncryptedKeyMaterial: wrap(t, p, material),
				ExpirationModel:      tc.expiration,
			}
			// Whole seconds: see TestImportKeyMaterialQuirks/ValidToFractionalSeconds.
			validTo := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
			if tc.expiration == types.ExpirationModelTypeKeyMaterialExpires {
				in.ValidTo = aws.Time(validTo)
			}
			imported, err := c.ImportKeyMaterial(ctx, in)
			if err != nil {
				t.Fatalf("ImportKeyMaterial: %v", err)
			}
			// local-kms answers with an empty body: no KeyId, no KeyMaterialId.
			if imported.KeyId != nil || imported.KeyMaterialId != nil {
				t.Errorf("ImportKeyMaterial output KeyId=%v KeyMaterialId=%v, expected local-kms to return neither",
					aws.ToString(imported.KeyId), aws.ToString(imported.KeyMaterialId))
			}

			md = describe(t, c, keyID)
			if !md.Enabled || md.KeyState != types.KeyStateEnabled {
				t.Errorf("after import: Enabled=%v KeyState=%s, want true Enabled", md.Enabled, md.KeyState)
			}
			if md.ExpirationModel != tc.expiration {
				t.Errorf("ExpirationModel = %q, want %q", md.ExpirationModel, tc.expiration)
			}
			if tc.expiration == types.ExpirationModelTypeKeyMaterialExpires {
				if md.ValidTo == nil || !md.ValidTo.Equal(validTo) {
					t.Errorf("ValidTo = %v, want %v", md.ValidTo, validTo)
				}
			} else if md.ValidTo != nil {
				t.Errorf("ValidTo = %v, want none", md.ValidTo)
			}
			if md.CurrentKeyMaterialId != nil {
				t.Errorf("CurrentKeyMaterialId = %q, expected local-kms not to report one", *md.CurrentKeyMaterialId)
			}
			if aws.ToString(md.Description) != "kmsbridge harness self-test" {
				t.Errorf("Description = %q", aws.ToString(md.Description))
			}

			plaintext := randomBytes(t, 100)
			blob := encrypt(t, c, keyID, plaintext)
			if bytes.Contains(blob, plaintext) {
				t.Fatal("ciphertext contains the plaintext")
			}
			got := decrypt(t, c, blob)
			if !bytes.Equal(got, plaintext) {
				t.Fatalf("Decrypt = %x, want %x", got, plaintext)
			}
			arn, opened := openCiphertext(t, material, blob)
			if arn != keyARN(keyID) || !bytes.Equal(opened, plaintext) {
				t.Fatalf("local open: arn=%q plaintext equal=%v", arn, bytes.Equal(opened, plaintext))
			}
		})
	}
}

// TestGetParametersForImportSupport pins which wrapping algorithms and
// wrapping key specs local-kms accepts.
func TestGetParametersForImportSupport(t *testing.T) {
	t.Parallel()
	c := newClient(t, Start(t))
	keyID := createExternalKey(t, c)

	for _, alg := range []types.AlgorithmSpec{
		types.AlgorithmSpecRsaesOaepSha1,
		types.AlgorithmSpecRsaesOaepSha256,
		types.AlgorithmSpecRsaesPkcs1V15,
	} {
		getParams(t, c, keyID, alg) // asserts a 2048-bit RSA key and a token
	}

	rejected := []struct {
		alg  types.AlgorithmSpec
		spec types.WrappingKeySpec
	}{
		{types.AlgorithmSpecRsaAesKeyWrapSha1, types.WrappingKeySpecRsa2048},
		{types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa2048},
		{types.AlgorithmSpecSm2pke, types.WrappingKeySpecSm2},
		{types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa3072},
		{types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa4096},
		{types.AlgorithmSpecRsaesOaepSha1, types.WrappingKeySpecRsa4096},
	}
	for _, r := range rejected {
		_, err := c.GetParametersForImport(t.Context(), &kms.GetParametersForImportInput{
			KeyId:             aws.String(keyID),
			WrappingAlgorithm: r.alg,
			WrappingKeySpec:   r.spec,
		})
		if got := errCode(err); got != "ValidationException" {
			t.Errorf("%s/%s: error code %q, want ValidationException (err: %v)", r.alg, r.spec, got, err)
		}
	}

	// Only EXTERNAL keys take import parameters.
	native, err := c.CreateKey(t.Context(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetParametersForImport(t.Context(), &kms.GetParametersForImportInput{
		KeyId:             native.KeyMetadata.KeyId,
		WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256,
		WrappingKeySpec:   types.WrappingKeySpecRsa2048,
	})
	wantErrCode(t, err, "UnsupportedOperationException")

	_, err = c.GetParametersForImport(t.Context(), &kms.GetParametersForImportInput{
		KeyId:             aws.String("00000000-0000-0000-0000-000000000000"),
		WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256,
		WrappingKeySpec:   types.WrappingKeySpecRsa2048,
	})
	var nf *types.NotFoundException
	if !errors.As(err, &nf) {
		t.Errorf("unknown key: err = %v, want *types.NotFoundException", err)
	}
}

// TestCreateKeySupport pins which CreateKey inputs local-kms accepts for
// EXTERNAL keys.
func TestCreateKeySupport(t *testing.T) {
	t.Parallel()
	c := newClient(t, Start(t))
	ctx := t.Context()

	for _, spec := range []types.KeySpec{types.KeySpecRsa2048, types.KeySpecEccNistP256, types.KeySpecHmac256} {
		usage := types.KeyUsageTypeSignVerify
		if spec == types.KeySpecHmac256 {
			usage = types.KeyUsageTypeGenerateVerifyMac
		}
		_, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: spec, KeyUsage: usage})
		if got := errCode(err); got != "ValidationException" {
			t.Errorf("EXTERNAL %s: error code %q, want ValidationException (err: %v)", spec, got, err)
		}
	}

	_, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm})
	wantErrCode(t, err, "UnsupportedOperationException")

	// Fields local-kms does not model are silently ignored.
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{
		Origin:                         types.OriginTypeExternal,
		MultiRegion:                    aws.Bool(true),
		BypassPolicyLockoutSafetyCheck: true,
	})
	if err != nil {
		t.Fatalf("CreateKey with MultiRegion: %v", err)
	}
	if aws.ToBool(out.KeyMetadata.MultiRegion) {
		t.Error("MultiRegion = true, expected local-kms to ignore it")
	}
	if out.KeyMetadata.KeySpec != types.KeySpecSymmetricDefault {
		t.Errorf("default KeySpec = %s", out.KeyMetadata.KeySpec)
	}
}

// TestImportKeyMaterialQuirks pins how local-kms treats ImportKeyMaterial
// inputs, including request fields newer than local-kms.
func TestImportKeyMaterialQuirks(t *testing.T) {
	t.Parallel()

	// setup creates an EXTERNAL key on its own server and returns the client,
	// key id, fresh OAEP-SHA-256 parameters and wrapped random material.
	setup := func(t *testing.T) (*kms.Client, string, importParams, []byte) {
		c := newClient(t, Start(t))
		keyID := createExternalKey(t, c)
		p := getParams(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256)
		return c, keyID, p, wrap(t, p, randomBytes(t, 32))
	}

	t.Run("NewRequestFieldsIgnored", func(t *testing.T) {
		t.Parallel()
		c, keyID, p, wrapped := setup(t)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId:                  aws.String(keyID),
			ImportToken:            p.token,
			EncryptedKeyMaterial:   wrapped,
			ExpirationModel:        types.ExpirationModelTypeKeyMaterialDoesNotExpire,
			ImportType:             types.ImportTypeNewKeyMaterial,
			KeyMaterialDescription: aws.String("from the HSM"),
			// Real KMS rejects a KeyMaterialId with NEW_KEY_MATERIAL;
			// local-kms never looks at it.
			KeyMaterialId: aws.String("not-a-real-id"),
		})
		if err != nil {
			t.Fatalf("ImportKeyMaterial with ImportType/KeyMaterialDescription/KeyMaterialId: %v", err)
		}
		if md := describe(t, c, keyID); md.KeyState != types.KeyStateEnabled {
			t.Fatalf("KeyState = %s", md.KeyState)
		}
	})

	t.Run("ExpirationModelOmittedPanics", func(t *testing.T) {
		t.Parallel()
		// local-kms dereferences ExpirationModel without a nil check, and
		// the SDK omits it when empty. Real KMS defaults it. Use a private
		// panic hook so that this documented panic does not fail the test.
		var (
			mu       sync.Mutex
			panicked []string
		)
		endpoint := start(t, func(target string, v any) {
			mu.Lock()
			defer mu.Unlock()
			panicked = append(panicked, target)
		})
		c := newClient(t, endpoint)
		keyID := createExternalKey(t, c)
		p := getParams(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId:                aws.String(keyID),
			ImportToken:          p.token,
			EncryptedKeyMaterial: wrap(t, p, randomBytes(t, 32)),
		})
		wantErrCode(t, err, "KMSInternalException")
		mu.Lock()
		defer mu.Unlock()
		if len(panicked) != 1 || panicked[0] != "TrentService.ImportKeyMaterial" {
			t.Fatalf("panics = %q, want exactly one in ImportKeyMaterial (no SDK retry)", panicked)
		}
	})

	t.Run("ExpiresWithoutValidTo", func(t *testing.T) {
		t.Parallel()
		c, keyID, p, wrapped := setup(t)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: p.token, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires,
		})
		wantErrCode(t, err, "ValidationException")
	})

	t.Run("DoesNotExpireWithValidToAccepted", func(t *testing.T) {
		t.Parallel()
		// Real KMS rejects ValidTo with KEY_MATERIAL_DOES_NOT_EXPIRE.
		c, keyID, p, wrapped := setup(t)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: p.token, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
			ValidTo:         aws.Time(time.Now().Add(time.Hour).Truncate(time.Second)),
		})
		if err != nil {
			t.Fatalf("ImportKeyMaterial: %v", err)
		}
		if md := describe(t, c, keyID); md.ValidTo != nil || md.ExpirationModel != types.ExpirationModelTypeKeyMaterialDoesNotExpire {
			t.Fatalf("ValidTo=%v ExpirationModel=%s, want none and DOES_NOT_EXPIRE", md.ValidTo, md.ExpirationModel)
		}
	})

	t.Run("ValidToFractionalSeconds", func(t *testing.T) {
		t.Parallel()
		// The SDK sends ValidTo as epoch seconds with milliseconds
		// (e.g. 1767225600.123); local-kms decodes it into an int64, the
		// whole body fails to decode, and it reports the first required
		// field as missing. Callers must truncate ValidTo to whole seconds.
		c, keyID, p, wrapped := setup(t)
		validTo := time.Now().Add(48 * time.Hour).Truncate(time.Second).Add(123 * time.Millisecond)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: p.token, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires,
			ValidTo:         aws.Time(validTo),
		})
		wantErrCode(t, err, "MissingParameterException")
		if !strings.Contains(err.Error(), "KeyId is a required parameter") {
			t.Errorf("err = %v, want the KeyId message", err)
		}
	})

	t.Run("ValidToBeyond365DaysAccepted", func(t *testing.T) {
		t.Parallel()
		// Real KMS caps ValidTo at 365 days; local-kms has no maximum.
		c, keyID, p, wrapped := setup(t)
		validTo := time.Now().Add(3 * 365 * 24 * time.Hour).Truncate(time.Second)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: p.token, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires,
			ValidTo:         aws.Time(validTo),
		})
		if err != nil {
			t.Fatalf("ImportKeyMaterial: %v", err)
		}
		if md := describe(t, c, keyID); md.ValidTo == nil || !md.ValidTo.Equal(validTo) {
			t.Fatalf("ValidTo = %v, want %v", md.ValidTo, validTo)
		}
	})

	t.Run("ValidToInThePast", func(t *testing.T) {
		t.Parallel()
		c, keyID, p, wrapped := setup(t)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: p.token, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires,
			ValidTo:         aws.Time(time.Now().Add(-time.Hour).Truncate(time.Second)),
		})
		wantErrCode(t, err, "ValidationException")
	})

	t.Run("WrongToken", func(t *testing.T) {
		t.Parallel()
		c, keyID, _, wrapped := setup(t)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: randomBytes(t, 256), EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		})
		var e *types.InvalidImportTokenException
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want *types.InvalidImportTokenException", err)
		}
	})

	t.Run("SupersededToken", func(t *testing.T) {
		t.Parallel()
		// Only the latest GetParametersForImport per key is kept (real KMS
		// also keeps only the latest).
		c, keyID, first, wrapped := setup(t)
		getParams(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256)
		_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: aws.String(keyID), ImportToken: first.token, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		})
		var e *types.InvalidImportTokenException
		if !errors.As(err, &e) {
			t.Fatalf("err = %v, want *types.InvalidImportTokenException", err)
		}
	})

	badMaterial := []struct {
		name string
		wrap func(t *testing.T, p importParams) []byte
		code string
	}{
		{"Material16Bytes", func(t *testing.T, p importParams) []byte { return wrap(t, p, randomBytes(t, 16)) },
			"IncorrectKeyMaterialException"},
		{"Material64Bytes", func(t *testing.T, p importParams) []byte { return wrap(t, p, randomBytes(t, 64)) },
			"IncorrectKeyMaterialException"},
		{"GarbageCiphertext", func(t *testing.T, p importParams) []byte { return randomBytes(t, 256) },
			"InvalidCiphertextException"},
		{"WrongOAEPHash", func(t *testing.T, p importParams) []byte {
			// Parameters were requested for OAEP SHA-256; wrap with SHA-1.
			return oaep(t, sha1.New(), p.pub, randomBytes(t, 32))
		}, "InvalidCiphertextException"},
	}
	for _, bm := range badMaterial {
		t.Run(bm.name, func(t *testing.T) {
			t.Parallel()
			c, keyID, p, _ := setup(t)
			_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
				KeyId: aws.String(keyID), ImportToken: p.token, EncryptedKeyMaterial: bm.wrap(t, p),
				ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
			})
			wantErrCode(t, err, bm.code)
			if md := describe(t, c, keyID); md.KeyState != types.KeyStatePendingImport {
				t.Fatalf("KeyState = %s after failed import", md.KeyState)
			}
		})
	}

	t.Run("IntoAwsKmsKey", func(t *testing.T) {
		t.Parallel()
		c, _, p, wrapped := setup(t)
		out, err := c.CreateKey(t.Context(), &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
			KeyId: out.KeyMetadata.KeyId, ImportToken: p.token, EncryptedKeyMaterial: wrapped,
			ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		})
		wantErrCode(t, err, "UnsupportedOperationException")
	})
}

func oaep(t *testing.T, h hash.Hash, pub *rsa.PublicKey, msg []byte) []byte {
	t.Helper()
	out, err := rsa.EncryptOAEP(h, rand.Reader, pub, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReimportAndDelete pins re-import and DeleteImportedKeyMaterial.
func TestReimportAndDelete(t *testing.T) {
	t.Parallel()
	c := newClient(t, Start(t))
	ctx := t.Context()
	keyID := createExternalKey(t, c)
	materialA, materialB := randomBytes(t, 32), randomBytes(t, 32)

	if err := importMaterial(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256, materialA); err != nil {
		t.Fatalf("first import: %v", err)
	}
	plaintext := []byte("kmsbridge re-import")
	blob := encrypt(t, c, keyID, plaintext)

	// Re-importing the same material into an Enabled key is accepted.
	if err := importMaterial(t, c, keyID, types.AlgorithmSpecRsaesOaepSha1, materialA); err != nil {
		t.Fatalf("re-import of the same material while Enabled: %v", err)
	}
	// Different material never is.
	err := importMaterial(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256, materialB)
	var incorrect *types.IncorrectKeyMaterialException
	if !errors.As(err, &incorrect) {
		t.Fatalf("import of different material: err = %v, want *types.IncorrectKeyMaterialException", err)
	}

	out, err := c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("DeleteImportedKeyMaterial: %v", err)
	}
	if out.KeyId != nil || out.KeyMaterialId != nil {
		t.Errorf("DeleteImportedKeyMaterial output KeyId=%v KeyMaterialId=%v, expected neither",
			aws.ToString(out.KeyId), aws.ToString(out.KeyMaterialId))
	}
	md := describe(t, c, keyID)
	if md.Enabled || md.KeyState != types.KeyStatePendingImport {
		t.Fatalf("after delete: Enabled=%v KeyState=%s, want false PendingImport", md.Enabled, md.KeyState)
	}
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plaintext})
	wantErrCode(t, err, "KMSInvalidStateException")
	// Real KMS says KMSInvalidStateException; local-kms maps any unusable
	// key on Decrypt (without KeyId) to AccessDeniedException.
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
	wantErrCode(t, err, "AccessDeniedException")

	// local-kms keeps the deleted material, so only the same material can
	// come back, and old ciphertexts decrypt again.
	err = importMaterial(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256, materialB)
	if !errors.As(err, &incorrect) {
		t.Fatalf("import of different material after delete: err = %v, want *types.IncorrectKeyMaterialException", err)
	}
	if err := importMaterial(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256, materialA); err != nil {
		t.Fatalf("re-import after delete: %v", err)
	}
	if md := describe(t, c, keyID); !md.Enabled || md.KeyState != types.KeyStateEnabled {
		t.Fatalf("after re-import: Enabled=%v KeyState=%s", md.Enabled, md.KeyState)
	}
	if got := decrypt(t, c, blob); !bytes.Equal(got, plaintext) {
		t.Fatalf("Decrypt after re-import = %q, want %q", got, plaintext)
	}
}

// TestMaterialExpiry checks that local-kms honours ValidTo: once it has
// passed, the key falls back to PendingImport.
func TestMaterialExpiry(t *testing.T) {
	t.Parallel()
	c := newClient(t, Start(t))
	keyID := createExternalKey(t, c)
	p := getParams(t, c, keyID, types.AlgorithmSpecRsaesOaepSha256)
	validTo := time.Now().Add(2 * time.Second).Truncate(time.Second)
	_, err := c.ImportKeyMaterial(t.Context(), &kms.ImportKeyMaterialInput{
		KeyId: aws.String(keyID), ImportToken: p.token, EncryptedKeyMaterial: wrap(t, p, randomBytes(t, 32)),
		ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires,
		ValidTo:         aws.Time(validTo),
	})
	if err != nil {
		t.Fatalf("ImportKeyMaterial: %v", err)
	}
	if md := describe(t, c, keyID); md.KeyState != types.KeyStateEnabled {
		t.Fatalf("before ValidTo: KeyState = %s", md.KeyState)
	}
	// local-kms expires when ValidTo < now, in whole seconds.
	time.Sleep(time.Until(validTo.Add(time.Second + 50*time.Millisecond)))
	md := describe(t, c, keyID)
	if md.Enabled || md.KeyState != types.KeyStatePendingImport || md.ExpirationModel != "" || md.ValidTo != nil {
		t.Fatalf("after ValidTo: Enabled=%v KeyState=%s ExpirationModel=%q ValidTo=%v, want false PendingImport none none",
			md.Enabled, md.KeyState, md.ExpirationModel, md.ValidTo)
	}
}

// TestTagsAndAliases checks the tag and alias operations kmsbridge may use
// around an import, including addressing an EXTERNAL key by alias.
func TestTagsAndAliases(t *testing.T) {
	t.Parallel()
	c := newClient(t, Start(t))
	ctx := t.Context()

	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{
		Origin: types.OriginTypeExternal,
		Tags: []types.Tag{
			{TagKey: aws.String("owner"), TagValue: aws.String("kmsbridge")},
			{TagKey: aws.String("empty"), TagValue: aws.String("")},
		},
	})
	if err != nil {
		t.Fatalf("CreateKey with tags: %v", err)
	}
	keyID := *created.KeyMetadata.KeyId
	if _, err := c.TagResource(ctx, &kms.TagResourceInput{
		KeyId: aws.String(keyID),
		Tags:  []types.Tag{{TagKey: aws.String("hsm-label"), TagValue: aws.String("key-1")}},
	}); err != nil {
		t.Fatalf("TagResource: %v", err)
	}
	tags, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("ListResourceTags: %v", err)
	}
	gotTags := map[string]string{}
	for _, tag := range tags.Tags {
		gotTags[*tag.TagKey] = *tag.TagValue
	}
	wantTags := map[string]string{"owner": "kmsbridge", "empty": "", "hsm-label": "key-1"}
	if len(gotTags) != len(wantTags) {
		t.Errorf("tags = %v, want %v", gotTags, wantTags)
	}
	for k, v := range wantTags {
		if got, ok := gotTags[k]; !ok || got != v {
			t.Errorf("tag %q = %q (present %v), want %q", k, got, ok, v)
		}
	}

	const alias = "alias/kmsbridge/test"
	if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(keyID)})
	var exists *types.AlreadyExistsException
	if !errors.As(err, &exists) {
		t.Errorf("duplicate CreateAlias: err = %v, want *types.AlreadyExistsException", err)
	}
	aliases, err := c.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatalf("ListAliases: %v", err)
	}
	if len(aliases.Aliases) != 1 || *aliases.Aliases[0].AliasName != alias || *aliases.Aliases[0].TargetKeyId != keyID {
		t.Errorf("ListAliases = %+v", aliases.Aliases)
	}

	// The whole import flow by alias.
	material := randomBytes(t, 32)
	if err := importMaterial(t, c, alias, types.AlgorithmSpecRsaesOaepSha256, material); err != nil {
		t.Fatalf("import by alias: %v", err)
	}
	if md := describe(t, c, alias); *md.KeyId != keyID || md.KeyState != types.KeyStateEnabled {
		t.Fatalf("DescribeKey(alias): KeyId=%s KeyState=%s", *md.KeyId, md.KeyState)
	}
	blob := encrypt(t, c, alias, []byte("by alias"))
	if got := decrypt(t, c, blob); string(got) != "by alias" {
		t.Fatalf("Decrypt = %q", got)
	}
	if _, got := openCiphertext(t, material, blob); string(got) != "by alias" {
		t.Fatalf("local open = %q", got)
	}
}

// TestUnimplementedOperations pins that operations local-kms lacks come back
// as an HTTP 501 error, not as a hang or a success.
func TestUnimplementedOperations(t *testing.T) {
	t.Parallel()
	c := newClient(t, Start(t))
	keyID := createExternalKey(t, c)

	_, err := c.ListKeyRotations(t.Context(), &kms.ListKeyRotationsInput{KeyId: aws.String(keyID)})
	wantHTTPStatus(t, err, http.StatusNotImplemented)
	_, err = c.RotateKeyOnDemand(t.Context(), &kms.RotateKeyOnDemandInput{KeyId: aws.String(keyID)})
	wantHTTPStatus(t, err, http.StatusNotImplemented)
}

func wantHTTPStatus(t *testing.T, err error, want int) {
	t.Helper()
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != want {
		t.Fatalf("err = %v, want an HTTP %d response error", err, want)
	}
}

// TestHarness checks the harness's own guarantees: loopback only, the same
// routing rules as local-kms, and isolated servers.
func TestHarness(t *testing.T) {
	t.Parallel()
	endpoint := Start(t)

	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); u.Scheme != "http" || ip == nil || !ip.IsLoopback() {
		t.Fatalf("endpoint %q is not a loopback http URL", endpoint)
	}

	for _, tc := range []struct {
		method, path, contentType, target string
		want                              int
	}{
		{http.MethodGet, "/", "application/x-amz-json-1.1", "TrentService.ListKeys", http.StatusMethodNotAllowed},
		{http.MethodPost, "/other", "application/x-amz-json-1.1", "TrentService.ListKeys", http.StatusNotFound},
		{http.MethodPost, "/", "text/plain", "TrentService.ListKeys", http.StatusUnsupportedMediaType},
		{http.MethodPost, "/", "application/x-amz-json-1.1", "TrentService.NoSuchOperation", http.StatusNotImplemented},
		{http.MethodPost, "/", "application/x-amz-json-1.1", "ListKeys", http.StatusNotImplemented},
		{http.MethodPost, "/", "application/x-amz-json-1.1", "TrentService.ListKeys", http.StatusOK},
		{http.MethodPost, "/", "application/json", "TrentService.ListKeys", http.StatusOK},
	} {
		req, err := http.NewRequestWithContext(t.Context(), tc.method, endpoint+tc.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", tc.contentType)
		req.Header.Set("X-Amz-Target", tc.target)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s %s %s: status %d, want %d", tc.method, tc.path, tc.contentType, tc.target, resp.StatusCode, tc.want)
		}
	}

	// Two servers do not share state.
	c1, c2 := newClient(t, endpoint), newClient(t, Start(t))
	keyID := createExternalKey(t, c1)
	_, err = c2.DescribeKey(t.Context(), &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	var nf *types.NotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("key from server 1 on server 2: err = %v, want *types.NotFoundException", err)
	}
	list, err := c2.ListKeys(t.Context(), &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Keys) != 0 {
		t.Fatalf("fresh server lists %d keys", len(list.Keys))
	}
}

// TestSequentialStartsInOneTest makes sure cleanups close one server's
// database before its directory goes away, and that a later Start works.
func TestSequentialStartsInOneTest(t *testing.T) {
	t.Parallel()
	for i := range 2 {
		t.Run("", func(t *testing.T) {
			c := newClient(t, Start(t))
			keyID := createExternalKey(t, c)
			if md := describe(t, c, keyID); md.KeyState != types.KeyStatePendingImport {
				t.Fatalf("run %d: KeyState = %s", i, md.KeyState)
			}
		})
	}
}
