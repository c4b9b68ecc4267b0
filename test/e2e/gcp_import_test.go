package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/kmsbridge/kmsbridge/hsm"
)

func TestGCPImportAES256EndToEnd(t *testing.T) {
	emu := startGCPEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	key := gcpRing + "/cryptoKeys/payments"
	args := emu.args(tok.Label, state, "payments", "--key-label", "payments-2026", "--generate")
	res := gcpImportJSON(t, tok, args...)
	if res.VersionState != "ENABLED" || res.Algorithm != "GOOGLE_SYMMETRIC_ENCRYPTION" || res.ProtectionLevel != "HSM" ||
		!res.KeyRingCreated || !res.CryptoKeyCreated || !res.ImportJobCreated || res.ImportMethod != "RSA_OAEP_4096_SHA1_AES_256" {
		// SoftHSM2 2.6 wraps with OAEP SHA-1 only; the result says why
		// the SHA-256 methods were passed over.
		t.Errorf("result %+v", res)
	}
	if !res.Attestation.Verified || res.Attestation.Status != "verified" || res.Attestation.PublicKeySHA256 == "" || res.Attestation.PublicKeySHA256 != res.WrappingPublicKeySHA256 {
		t.Errorf("attestation %+v, wrapping key %s", res.Attestation, res.WrappingPublicKeySHA256)
	}
	if !res.Proof.EncryptDecrypt || res.HSM.KeyLabel != "payments-2026" || !res.HSM.Generated {
		t.Errorf("proof %+v, hsm %+v", res.Proof, res.HSM)
	}
	// Google's own client uses the key independently.
	ctx := context.Background()
	enc, err := emu.KMS.Encrypt(ctx, &kmspb.EncryptRequest{Name: res.CryptoKeyVersion, Plaintext: []byte("card 4111")})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := emu.KMS.Decrypt(ctx, &kmspb.DecryptRequest{Name: key, Ciphertext: enc.Ciphertext})
	if err != nil || string(dec.Plaintext) != "card 4111" {
		t.Fatalf("decrypt %q %v", dec.GetPlaintext(), err)
	}
	ck, err := emu.KMS.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: key})
	if err != nil || !ck.ImportOnly || ck.Labels["kmsbridge-hsm-key-id"] != res.HSM.KeyID {
		t.Fatalf("crypto key %+v %v", ck, err)
	}
	// The HSM key stays the guarded master copy.
	if k, err := openInProcess(t, tok).FindKey(hsm.KeySelector{Label: "payments-2026"}, hsm.AES256()); err != nil || !k.Sensitive || !k.Extractable || k.CheckValueHex() != res.HSM.KeyCheckValue {
		t.Errorf("the HSM master copy: %+v %v", k, err)
	}
	// Re-running the same command finishes nothing twice.
	again := gcpImportJSON(t, tok, args...)
	if n := len(emu.versions(t, key)); n != 1 || again.CryptoKeyVersion != res.CryptoKeyVersion || len(again.Resumed) == 0 {
		t.Fatalf("re-run: %d versions, version %s (first %s), resumed %q", n, again.CryptoKeyVersion, res.CryptoKeyVersion, again.Resumed)
	}
}

func TestGCPImportECP256EndToEnd(t *testing.T) {
	// SoftHSM2 2.6 zero-pads PKCS#8 before its key wrap; the emulator is
	// strict unless told (TestGCPSoftHSMPaddedPKCS8IsRefusedByStrictEmulator).
	emu := startGCPEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	res := gcpImportJSON(t, tok, emu.args(tok.Label, t.TempDir(), "signer", "--key-label", "signer-2026", "--generate", "--gcp-algorithm", "EC_SIGN_P256_SHA256")...)
	if res.VersionState != "ENABLED" || !res.Proof.MaterialConfirmed || res.Purpose != "ASYMMETRIC_SIGN" || !res.Attestation.Verified {
		t.Fatalf("result %+v", res)
	}
	// Independently: a Cloud KMS signature verifies under the HSM's own
	// public key.
	h := openInProcess(t, tok)
	k, err := h.FindKey(hsm.KeySelector{Label: "signer-2026"}, hsm.ECKey(hsm.P256))
	if err != nil {
		t.Fatal(err)
	}
	der, err := h.PublicKeyDER(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("release v1"))
	sig, err := emu.KMS.AsymmetricSign(context.Background(), &kmspb.AsymmetricSignRequest{Name: res.CryptoKeyVersion, Digest: &kmspb.Digest{Digest: &kmspb.Digest_Sha256{Sha256: digest[:]}}})
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig.Signature) {
		t.Fatal("Cloud KMS's signature does not verify under the HSM key")
	}
}

func TestGCPBadInputsRefusedBeforeAnyChange(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--project", gcpProject)
	tok := newToken(t)
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad project", []string{"--gcp-project", "My_Project"}, 2, "is not a project ID"},
		{"unknown project", []string{"--gcp-project", "other-project"}, 4, "or the project does not exist"},
		{"unknown location", []string{"--gcp-location", "mars-north1"}, 2, `no location "mars-north1"`},
		{"bad key ring", []string{"--key-ring", "ring/x"}, 2, "is not a key ring ID"},
		{"no roots", []string{"--gcp-manufacturer-root", ""}, 2, "--gcp-manufacturer-root FILE"},
		{"missing root file", []string{"--gcp-owner-root", "/nonexistent/root.pem"}, 2, "root.pem"},
		{"unknown algorithm", []string{"--gcp-algorithm", "AES_512"}, 2, "is not one kmsbridge imports"},
		{"aws flag", []string{"--alias", "alias/x"}, 2, "is an AWS KMS flag"},
		{"unknown job", []string{"--import-job", "nope"}, 2, "does not exist"},
		{"foreign endpoint", []string{"--endpoint-url", "http://10.1.2.3:443"}, 2, "plaintext"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := emu.args(tok.Label, t.TempDir(), "k1", "--key-label", "bad-"+strings.ReplaceAll(c.name, " ", "-"), "--generate")
			args = append(args, c.args...)
			r := kmsbridge(t, tok, args...)
			if r.Code != c.code || !strings.Contains(r.Stderr, c.want) {
				t.Fatalf("exit %d, want %d with %q:\n%s", r.Code, c.code, c.want, r.Stderr)
			}
			if tokenHasLabel(t, tok, "bad-"+strings.ReplaceAll(c.name, " ", "-")) || emu.exists(t, gcpRing) {
				t.Fatal("something was created")
			}
		})
	}
}

func TestGCPExpiredImportJobRefused(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--import-job-ttl", "2s")
	tok := newToken(t)
	ctx := context.Background()
	if _, err := emu.KMS.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: "projects/" + gcpProject + "/locations/" + gcpLocation, KeyRingId: "ring"}); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.KMS.CreateImportJob(ctx, &kmspb.CreateImportJobRequest{Parent: gcpRing, ImportJobId: "old",
		ImportJob: &kmspb.ImportJob{ImportMethod: kmspb.ImportJob_RSA_OAEP_3072_SHA256_AES_256, ProtectionLevel: kmspb.ProtectionLevel_HSM}}); err != nil {
		t.Fatal(err)
	}
	// The job's 2s TTL, however long that takes on a loaded machine.
	waitUntil(t, "the import job to expire", time.Minute, func() bool {
		j, err := emu.KMS.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: gcpRing + "/importJobs/old"})
		if err != nil {
			t.Fatal(err)
		}
		return j.State == kmspb.ImportJob_EXPIRED
	})
	r := kmsbridge(t, tok, emu.args(tok.Label, t.TempDir(), "k", "--key-label", "late", "--generate", "--import-job", "old")...)
	if r.Code != 2 || !strings.Contains(r.Stderr, "expired at") || !strings.Contains(r.Stderr, "drop --import-job") {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
	}
	if tokenHasLabel(t, tok, "late") || emu.exists(t, gcpRing+"/cryptoKeys/k") {
		t.Fatal("something was created")
	}
}

func TestGCPBadAttestationRefusedBeforeTheWrap(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		tamper, want string
		otherRoots   bool
	}{
		{tamper: "statement", want: "signature does not verify"},
		{tamper: "wrapping-key", want: "modulus is not the job's wrapping public key"},
		{tamper: "extractable", want: "CKA_EXTRACTABLE=true"},
		{otherRoots: true, want: "is signed by the manufacturer root given"},
	} {
		t.Run(c.tamper+c.want[:8], func(t *testing.T) {
			var emu *gcpEmulator
			if c.tamper != "" {
				emu = startGCPEmulator(t, "--tamper-attestation", c.tamper)
			} else {
				emu = startGCPEmulator(t)
				emu.Roots = startGCPEmulator(t, ownRoots...).Roots // another authority's roots
			}
			tok := newToken(t)
			r := kmsbridge(t, tok, emu.args(tok.Label, t.TempDir(), "k", "--key-label", "never", "--generate")...)
			if r.Code != 5 || !strings.Contains(r.Stderr, c.want) || !strings.Contains(r.Stderr, "nothing was wrapped") {
				t.Fatalf("exit %d, want 5 with %q:\n%s", r.Code, c.want, r.Stderr)
			}
			// Refused before the HSM key or the crypto key exist.
			if tokenHasLabel(t, tok, "never") || emu.exists(t, gcpRing+"/cryptoKeys/k") {
				t.Fatal("an HSM key or a crypto key was created before the attestation was checked")
			}
		})
	}
}

func TestGCPLostImportAnswerRecoveredByRerun(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--fault", "ImportCryptoKeyVersion:lost")
	tok := newToken(t)
	state := t.TempDir()
	args := emu.args(tok.Label, state, "payments", "--key-label", "lost-2026", "--generate")
	r := kmsbridge(t, tok, args...)
	if r.Code != 4 || !strings.Contains(r.Stderr, "Unavailable") || !strings.Contains(r.Stderr, "re-run the same command") {
		t.Fatalf("first run: exit %d:\n%s", r.Code, r.Stderr)
	}
	res := gcpImportJSON(t, tok, args...)
	vs := emu.versions(t, gcpRing+"/cryptoKeys/payments")
	if len(vs) != 1 || res.CryptoKeyVersion != vs[0].Name || res.VersionState != "ENABLED" || !res.Proof.EncryptDecrypt {
		t.Fatalf("after re-run: %d versions, result %+v", len(vs), res)
	}
}

func TestGCPSoftHSMPaddedPKCS8IsRefusedByStrictEmulator(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := newToken(t)
	r := kmsbridge(t, tok, emu.args(tok.Label, t.TempDir(), "signer", "--key-label", "padded", "--generate", "--gcp-algorithm", "EC_SIGN_P256_SHA256")...)
	if r.Code != 4 || !strings.Contains(r.Stderr, "IMPORT_FAILED") || !strings.Contains(r.Stderr, "after its PKCS#8 structure") {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
	}
}

// TestGCPSupportMatrix imports each algorithm of the README's Google
// column from SoftHSM2 and proves it.
func TestGCPSupportMatrix(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	for _, c := range []struct {
		alg       string
		confirmed bool
		method    string
	}{
		{"HMAC_SHA256", true, "RSA_OAEP_4096_SHA1_AES_256"},
		{"HMAC_SHA512", true, "RSA_OAEP_4096_SHA1_AES_256"},
		{"EC_SIGN_P384_SHA384", true, "RSA_OAEP_4096_SHA1_AES_256"},
		{"RSA_SIGN_PKCS1_2048_SHA256", true, "RSA_OAEP_4096_SHA1_AES_256"},
		{"RSA_DECRYPT_OAEP_2048_SHA256", true, "RSA_OAEP_4096_SHA1_AES_256"},
	} {
		t.Run(c.alg, func(t *testing.T) {
			name := strings.ToLower(strings.ReplaceAll(c.alg, "_", "-"))
			res := gcpImportJSON(t, tok, emu.args(tok.Label, t.TempDir(), name, "--key-label", name, "--generate", "--gcp-algorithm", c.alg)...)
			if res.VersionState != "ENABLED" || res.Proof.MaterialConfirmed != c.confirmed || res.ImportMethod != c.method || !res.Attestation.Verified {
				t.Fatalf("%s: %+v", c.alg, res)
			}
		})
	}
}

func TestGCPReimportIntoDestroyedVersion(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t, "--destroy-delay", "1s")
	tok := newToken(t)
	state := t.TempDir()
	args := emu.args(tok.Label, state, "payments", "--key-label", "master-2026", "--generate")
	first := gcpImportJSON(t, tok, args...)
	ctx := context.Background()
	if _, err := emu.KMS.DestroyCryptoKeyVersion(ctx, &kmspb.DestroyCryptoKeyVersionRequest{Name: first.CryptoKeyVersion}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the version to be destroyed", time.Minute, func() bool {
		v, err := emu.KMS.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: first.CryptoKeyVersion})
		if err != nil {
			t.Fatal(err)
		}
		return v.State == kmspb.CryptoKeyVersion_DESTROYED
	})
	// The HSM stays the master copy: the same material goes back into the
	// same version, and re-running that finishes nothing twice.
	for range 2 {
		res := gcpImportJSON(t, tok, append(args, "--crypto-key-version", "1")...)
		vs := emu.versions(t, gcpRing+"/cryptoKeys/payments")
		if len(vs) != 1 || res.CryptoKeyVersion != first.CryptoKeyVersion || vs[0].State != kmspb.CryptoKeyVersion_ENABLED || !res.Proof.EncryptDecrypt {
			t.Fatalf("re-import: %d versions, %+v", len(vs), res)
		}
	}
	// Another HSM key cannot take over the crypto key.
	r := kmsbridge(t, tok, emu.args(tok.Label, t.TempDir(), "payments", "--key-label", "other-2026", "--generate", "--crypto-key-version", "1")...)
	if r.Code != 2 || !strings.Contains(r.Stderr, "labels do not link it to this HSM key") {
		t.Fatalf("exit %d:\n%s", r.Code, r.Stderr)
	}
}

// TestGCPFaultOnEachChangeRecoveredByRerun loses the answer of, or fails,
// each Cloud KMS call that changes something; the run either absorbs it
// (Google's client retries creates, and kmsbridge adopts what is provably
// its own) or stops with exit 4, and a re-run finishes with one of each.
func TestGCPFaultOnEachChangeRecoveredByRerun(t *testing.T) {
	t.Parallel()
	// First-run exit codes: Google's client retries every call here but
	// ImportCryptoKeyVersion, so a lost create comes back ALREADY_EXISTS
	// and is adopted (exit 0); a failed import stops the run (exit 4).
	for fault, code := range map[string]int{"CreateKeyRing:lost": 0, "CreateCryptoKey:lost": 0, "CreateImportJob:lost": 0,
		"ImportCryptoKeyVersion": 4, "ImportCryptoKeyVersion:lost": 4, "GetCryptoKeyVersion": 0, "Encrypt": 0} {
		t.Run(fault, func(t *testing.T) {
			emu := startGCPEmulator(t, "--fault", fault)
			tok := newToken(t)
			args := emu.args(tok.Label, t.TempDir(), "payments", "--key-label", "f-2026", "--generate")
			r := kmsbridge(t, tok, args...)
			if r.Code != code {
				t.Fatalf("first run: exit %d, want %d:\n%s", r.Code, code, r.Stderr)
			}
			res := gcpImportJSON(t, tok, args...)
			vs := emu.versions(t, gcpRing+"/cryptoKeys/payments")
			if len(vs) != 1 || res.VersionState != "ENABLED" || !res.Proof.EncryptDecrypt {
				t.Fatalf("after re-run: %d versions, %+v", len(vs), res)
			}
		})
	}
}

func TestGCPSoftwareJobAndSkippedCheckAreSaid(t *testing.T) {
	t.Parallel()
	emu := startGCPEmulator(t)
	tok := newToken(t)
	// Roots mean nothing for a SOFTWARE job (and are refused with it).
	var soft []string
	all := emu.args(tok.Label, t.TempDir(), "soft", "--key-label", "soft-2026", "--generate", "--gcp-protection-level", "SOFTWARE")
	for i := 0; i < len(all); i++ {
		if all[i] == "--gcp-manufacturer-root" || all[i] == "--gcp-owner-root" {
			i++
			continue
		}
		soft = append(soft, all[i])
	}
	res := gcpImportJSON(t, tok, soft...)
	if res.Attestation.Verified || !strings.HasPrefix(res.Attestation.Status, "none: SOFTWARE") || res.ProtectionLevel != "SOFTWARE" {
		t.Fatalf("SOFTWARE: %+v", res.Attestation)
	}
	rec := filepath.Join(t.TempDir(), "record.jsonl")
	skipped := gcpImportJSON(t, tok, emu.args(tok.Label, t.TempDir(), "skipped", "--key-label", "skip-2026", "--generate", "--gcp-skip-attestation", "--record", rec)...)
	if skipped.Attestation.Verified || !strings.HasPrefix(skipped.Attestation.Status, "skipped") || len(skipped.Warnings) == 0 {
		t.Fatalf("skipped: %+v", skipped.Attestation)
	}
	// The ceremony record says so too, in its inputs and its steps.
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"SkipAttestation":"true"`) || !strings.Contains(string(b), "skipped: --gcp-skip-attestation was given") {
		t.Fatalf("the record does not say the attestation was skipped:\n%s", b)
	}
}
