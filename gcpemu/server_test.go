package gcpemu_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kmsbridge/kmsbridge/gcpemu"
	"github.com/kmsbridge/kmsbridge/internal/emukeys/emukeystest"
	"github.com/kmsbridge/kmsbridge/internal/kwp"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest"
)

const loc = "projects/test-project/locations/us-central1"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Every emulator of these tests takes its import jobs' key pairs from one
// test key cache (start).
func TestMain(m *testing.M) { emukeystest.Main(m) }

// start serves an emulator on loopback and returns Google's own client.
func start(t *testing.T, opts gcpemu.Options) (*gcpemu.Server, *kms.KeyManagementClient, *clock) {
	t.Helper()
	if opts.TestKeys == nil {
		// Import-job key pairs (RSA-3072 and 4096) generated once per run,
		// not per test.
		opts.TestKeys = emukeystest.Source(t)
	}
	clk := &clock{t: time.Now()}
	if opts.Now == nil {
		opts.Now = clk.now
	}
	srv, err := gcpemu.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { l.Close() })
	c, err := kms.NewKeyManagementClient(context.Background(), option.WithEndpoint(l.Addr().String()),
		option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return srv, c, clk
}

func TestServeRefusesNonLoopback(t *testing.T) {
	t.Parallel()
	if err := gcpemu.CheckLoopback("0.0.0.0:1234"); err == nil {
		t.Fatal("0.0.0.0 accepted")
	}
	if err := gcpemu.CheckLoopback("127.0.0.1:1234"); err != nil {
		t.Fatal(err)
	}
}

func code(t *testing.T, err error, want codes.Code, msg string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != want || !strings.Contains(st.Message(), msg) {
		t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), want, msg)
	}
}

func setup(t *testing.T, c *kms.KeyManagementClient, alg kmspb.CryptoKeyVersion_CryptoKeyVersionAlgorithm, purpose kmspb.CryptoKey_CryptoKeyPurpose, pl kmspb.ProtectionLevel) (string, string) {
	t.Helper()
	ctx := context.Background()
	ring := loc + "/keyRings/r1"
	if _, err := c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: ring}); err != nil {
		// The recorded 404 wording.
		code(t, err, codes.NotFound, "KeyRing "+ring+" not found.")
		if _, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "r1"}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := c.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: ring, CryptoKeyId: "k-" + strings.ToLower(alg.String()),
		SkipInitialVersionCreation: true, CryptoKey: &kmspb.CryptoKey{Purpose: purpose, ImportOnly: true,
			DestroyScheduledDuration: durationpb.New(24 * time.Hour),
			VersionTemplate:          &kmspb.CryptoKeyVersionTemplate{Algorithm: alg, ProtectionLevel: pl}}})
	if err != nil {
		t.Fatal(err)
	}
	return ring, key.Name
}

func newJob(t *testing.T, srv *gcpemu.Server, c *kms.KeyManagementClient, ring, id string, m kmspb.ImportJob_ImportMethod, pl kmspb.ProtectionLevel) *kmspb.ImportJob {
	t.Helper()
	ctx := context.Background()
	j, err := c.CreateImportJob(ctx, &kmspb.CreateImportJobRequest{Parent: ring, ImportJobId: id, ImportJob: &kmspb.ImportJob{ImportMethod: m, ProtectionLevel: pl}})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != kmspb.ImportJob_PENDING_GENERATION || j.PublicKey != nil || j.Attestation != nil {
		t.Fatalf("a new job is %s with public key %v: want PENDING_GENERATION without key, as recorded", j.State, j.PublicKey)
	}
	srv.WaitGenerated(time.Minute)
	j, err = c.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: j.Name})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != kmspb.ImportJob_ACTIVE {
		t.Fatalf("job %s", j.State)
	}
	return j
}

func jobKey(t *testing.T, j *kmspb.ImportJob) *rsa.PublicKey {
	b, _ := pem.Decode([]byte(j.GetPublicKey().GetPem()))
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}

// wrapRSAAES is CKM_RSA_AES_KEY_WRAP done in Go, for the emulator's own
// test only: kmsbridge wraps inside the HSM.
func wrapRSAAES(t *testing.T, pub *rsa.PublicKey, sha1Hash bool, material []byte) []byte {
	eph := make([]byte, 32)
	_, _ = rand.Read(eph)
	h := sha256.New()
	if sha1Hash {
		h = sha1.New()
	}
	c, err := rsa.EncryptOAEP(h, rand.Reader, pub, eph, nil)
	if err != nil {
		t.Fatal(err)
	}
	return append(c, kwp.Wrap(eph, material)...)
}

func waitVersion(t *testing.T, c *kms.KeyManagementClient, name string) *kmspb.CryptoKeyVersion {
	t.Helper()
	for range 100 {
		v, err := c.GetCryptoKeyVersion(context.Background(), &kmspb.GetCryptoKeyVersionRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if v.State != kmspb.CryptoKeyVersion_PENDING_IMPORT {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("version stayed PENDING_IMPORT")
	return nil
}

func TestImportSymmetricWithGoogleClientAndAttestation(t *testing.T) {
	t.Parallel()
	srv, c, _ := start(t, gcpemu.Options{ImportDelay: 50 * time.Millisecond, Now: time.Now})
	ctx := context.Background()
	ring, key := setup(t, c, kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION, kmspb.CryptoKey_ENCRYPT_DECRYPT, kmspb.ProtectionLevel_HSM)
	j := newJob(t, srv, c, ring, "job1", kmspb.ImportJob_RSA_OAEP_3072_SHA256_AES_256, kmspb.ProtectionLevel_HSM)
	a := j.GetAttestation()
	st := attest.Statement{Format: attest.Format(a.GetFormat()), Content: a.GetContent(), CaviumCerts: a.GetCertChains().GetCaviumCerts(),
		GoogleCardCerts: a.GetCertChains().GetGoogleCardCerts(), GooglePartCerts: a.GetCertChains().GetGooglePartitionCerts()}
	if _, err := attest.Verify(st, srv.Authority().Roots(), jobKey(t, j), j.GetGenerateTime().AsTime()); err != nil {
		t.Fatalf("the emulator's attestation does not verify under its own roots: %v", err)
	}
	material := make([]byte, 32)
	_, _ = rand.Read(material)
	v, err := c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{Parent: key, ImportJob: j.Name,
		Algorithm:          kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		WrappedKeyMaterial: &kmspb.ImportCryptoKeyVersionRequest_RsaAesWrappedKey{RsaAesWrappedKey: wrapRSAAES(t, jobKey(t, j), false, material)}})
	if err != nil {
		t.Fatal(err)
	}
	if v.State != kmspb.CryptoKeyVersion_PENDING_IMPORT {
		t.Fatalf("state %s, want PENDING_IMPORT", v.State)
	}
	v = waitVersion(t, c, v.Name)
	if v.State != kmspb.CryptoKeyVersion_ENABLED {
		t.Fatalf("state %s %s", v.State, v.ImportFailureReason)
	}
	enc, err := c.Encrypt(ctx, &kmspb.EncryptRequest{Name: v.Name, Plaintext: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: enc.Ciphertext})
	if err != nil || string(dec.Plaintext) != "hello" {
		t.Fatalf("decrypt %q %v", dec.GetPlaintext(), err)
	}

	// Wrong length: the version ends IMPORT_FAILED with a reason.
	v2, err := c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{Parent: key, ImportJob: j.Name,
		Algorithm:          kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		WrappedKeyMaterial: &kmspb.ImportCryptoKeyVersionRequest_RsaAesWrappedKey{RsaAesWrappedKey: wrapRSAAES(t, jobKey(t, j), false, material[:16])}})
	if err != nil {
		t.Fatal(err)
	}
	if v2 = waitVersion(t, c, v2.Name); v2.State != kmspb.CryptoKeyVersion_IMPORT_FAILED || !strings.Contains(v2.ImportFailureReason, "exactly 32 bytes") || !v2.ReimportEligible {
		t.Fatalf("short key: %s %q", v2.State, v2.ImportFailureReason)
	}
	// Wrong OAEP hash: unwrap fails.
	v3, _ := c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{Parent: key, ImportJob: j.Name,
		Algorithm:          kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		WrappedKeyMaterial: &kmspb.ImportCryptoKeyVersionRequest_RsaAesWrappedKey{RsaAesWrappedKey: wrapRSAAES(t, jobKey(t, j), true, material)}})
	if v3 = waitVersion(t, c, v3.Name); v3.State != kmspb.CryptoKeyVersion_IMPORT_FAILED {
		t.Fatalf("SHA-1 wrap under a SHA-256 job: %s", v3.State)
	}
}

func TestDestroyAndReimportSameMaterialOnly(t *testing.T) {
	t.Parallel()
	srv, c, clk := start(t, gcpemu.Options{})
	ctx := context.Background()
	ring, key := setup(t, c, kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256, kmspb.CryptoKey_ASYMMETRIC_SIGN, kmspb.ProtectionLevel_HSM)
	j := newJob(t, srv, c, ring, "job1", kmspb.ImportJob_RSA_OAEP_4096_SHA256_AES_256, kmspb.ProtectionLevel_HSM)
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	imp := func(version string, material []byte) (*kmspb.CryptoKeyVersion, error) {
		return c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{Parent: key, ImportJob: j.Name, CryptoKeyVersion: version,
			Algorithm:  kmspb.CryptoKeyVersion_EC_SIGN_P256_SHA256,
			WrappedKey: wrapRSAAES(t, jobKey(t, j), false, material)})
	}
	v, err := imp("", der)
	if err != nil {
		t.Fatal(err)
	}
	v = waitVersion(t, c, v.Name)
	pk, err := c.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v.Name})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode([]byte(pk.Pem))
	want, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if string(b.Bytes) != string(want) {
		t.Fatal("GetPublicKey is not the imported key's")
	}
	// Re-import into an ENABLED version is refused.
	_, err = imp(v.Name, der)
	code(t, err, codes.FailedPrecondition, "only DESTROYED or IMPORT_FAILED")
	if _, err := c.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: v.Name}); err != nil {
		t.Fatal(err)
	}
	clk.add(25 * time.Hour)
	// The job expired meanwhile (3 days is longer; make it expire).
	clk.add(72 * time.Hour)
	_, err = imp(v.Name, der)
	code(t, err, codes.FailedPrecondition, "is not active, current state is: EXPIRED")
	j = newJob(t, srv, c, ring, "job2", kmspb.ImportJob_RSA_OAEP_4096_SHA256_AES_256, kmspb.ProtectionLevel_HSM)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalPKCS8PrivateKey(other)
	_, err = imp(v.Name, otherDER)
	code(t, err, codes.FailedPrecondition, "does not match the previous key material")
	v, err = imp(v.Name, der)
	if err != nil {
		t.Fatal(err)
	}
	if v = waitVersion(t, c, v.Name); v.State != kmspb.CryptoKeyVersion_ENABLED || !strings.HasSuffix(v.Name, "/cryptoKeyVersions/1") {
		t.Fatalf("re-import: %s %s", v.Name, v.State)
	}
}

func TestMacSignAndProtectionLevelRule(t *testing.T) {
	t.Parallel()
	srv, c, _ := start(t, gcpemu.Options{})
	ctx := context.Background()
	ring, key := setup(t, c, kmspb.CryptoKeyVersion_HMAC_SHA256, kmspb.CryptoKey_MAC, kmspb.ProtectionLevel_HSM)
	soft := newJob(t, srv, c, ring, "soft", kmspb.ImportJob_RSA_OAEP_3072_SHA256, kmspb.ProtectionLevel_SOFTWARE)
	if soft.Attestation != nil {
		t.Fatal("a SOFTWARE job has an attestation")
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	oaep := func(pub *rsa.PublicKey) []byte {
		ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)
		return ct
	}
	_, err := c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{Parent: key, ImportJob: soft.Name, Algorithm: kmspb.CryptoKeyVersion_HMAC_SHA256,
		WrappedKey: oaep(jobKey(t, soft))})
	code(t, err, codes.FailedPrecondition, "has protection level SOFTWARE")
	j := newJob(t, srv, c, ring, "hsm", kmspb.ImportJob_RSA_OAEP_3072_SHA256, kmspb.ProtectionLevel_HSM)
	v, err := c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{Parent: key, ImportJob: j.Name, Algorithm: kmspb.CryptoKeyVersion_HMAC_SHA256,
		WrappedKey: oaep(jobKey(t, j))})
	if err != nil {
		t.Fatal(err)
	}
	v = waitVersion(t, c, v.Name)
	out, err := c.MacSign(ctx, &kmspb.MacSignRequest{Name: v.Name, Data: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("m"))
	if !hmac.Equal(out.Mac, m.Sum(nil)) {
		t.Fatal("MacSign differs from HMAC-SHA256")
	}
	// Wrong algorithm for the key's purpose.
	_, err = c.ImportCryptoKeyVersion(ctx, &kmspb.ImportCryptoKeyVersionRequest{Parent: key, ImportJob: j.Name, Algorithm: kmspb.CryptoKeyVersion_GOOGLE_SYMMETRIC_ENCRYPTION,
		WrappedKey: oaep(jobKey(t, j))})
	code(t, err, codes.InvalidArgument, "not compatible with purpose MAC")
	// Names that do not exist: the recorded NOT_FOUND wording.
	_, err = c.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: ring + "/importJobs/nope"})
	code(t, err, codes.NotFound, "ImportJob "+ring+"/importJobs/nope not found.")
	_, err = c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/test-project/locations/mars-north1", KeyRingId: "r"})
	code(t, err, codes.NotFound, "not found")
}

func TestFaultsApplyOnce(t *testing.T) {
	t.Parallel()
	_, c, _ := start(t, gcpemu.Options{Faults: []gcpemu.Fault{{Method: "CreateKeyRing", Lost: true}}})
	ctx := context.Background()
	// Google's client retries CreateKeyRing on UNAVAILABLE, so a lost
	// answer comes back as ALREADY_EXISTS: callers must expect it.
	_, err := c.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: loc, KeyRingId: "r"})
	code(t, err, codes.AlreadyExists, "already exists")
	_, err = c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: loc + "/keyRings/r"})
	if err != nil {
		t.Fatalf("the lost call did not take effect: %v", err)
	}
	// ImportCryptoKeyVersion is not retried by the client: the fault shows.
}
