package attest_test

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest/attesttest"
)

// realRoots are the published Marvell and Google roots (testdata, with
// their sources in docs/gcp-import.md).
func realRoots(t *testing.T) attest.Roots {
	t.Helper()
	r, err := attest.LoadRoots("testdata/marvell_liquidsecurity_root.pem", "testdata/google_hawksbill_root_v1_prod.pem")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// realJob is a genuine Cloud KMS ImportJob (RSA_OAEP_3072_SHA1_AES_256,
// HSM) recorded from the real service, enums as names.
func realJob(t *testing.T, file string) *kmspb.ImportJob {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	job := &kmspb.ImportJob{}
	if err := protojson.Unmarshal(data, job); err != nil {
		t.Fatal(err)
	}
	return job
}

func statementOf(job *kmspb.ImportJob) attest.Statement {
	a := job.GetAttestation()
	return attest.Statement{Format: attest.Format(a.GetFormat()), Content: a.GetContent(),
		CaviumCerts: a.GetCertChains().GetCaviumCerts(), GoogleCardCerts: a.GetCertChains().GetGoogleCardCerts(),
		GooglePartCerts: a.GetCertChains().GetGooglePartitionCerts()}
}

func rsaPub(t *testing.T, pemText string) *rsa.PublicKey {
	t.Helper()
	b, _ := pem.Decode([]byte(pemText))
	if b == nil {
		t.Fatal("no PEM")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}

func TestRealImportJobAttestationVerifies(t *testing.T) {
	job := realJob(t, "kcc_real_importjob_rsa3072.json")
	at := job.GetGenerateTime().AsTime()
	res, err := attest.Verify(statementOf(job), realRoots(t), rsaPub(t, job.GetPublicKey().GetPem()), at)
	if err != nil {
		t.Fatalf("a genuine Cloud HSM import job was refused: %v", err)
	}
	if res.ManufacturerRootSHA256 != "975757f0d76640e03d14760f8fc9e3a55826fa7807b2c392f7801a95bd69cc28" ||
		res.OwnerRootSHA256 != "46b5fd351d56a0721ca0afcd1731c0f7b74e3941eb818bfd0ec36e29df0de095" {
		t.Errorf("roots used: %s, %s", res.ManufacturerRootSHA256, res.OwnerRootSHA256)
	}
	if !strings.Contains(res.HSM, "5.2G1917-ICM000485:PARTN:1") || res.PublicKeySHA256 == "" {
		t.Errorf("result %+v", res)
	}
	// Today, after the Marvell root's expiry, it still verifies, and says so.
	res, err = attest.Verify(statementOf(job), realRoots(t), rsaPub(t, job.GetPublicKey().GetPem()), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("the genuine job was refused after the manufacturer root's expiry: %v", err)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "expired on 2025-11-16") {
		t.Errorf("notes %q do not say the manufacturer root expired", res.Notes)
	}
}

// refused asserts err is ErrAttestation and says want.
func refused(t *testing.T, err error, want string) {
	t.Helper()
	if !errors.Is(err, attest.ErrAttestation) {
		t.Fatalf("want ErrAttestation, got %v", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestPlaceholderAttestationIsRefused(t *testing.T) {
	// What a mock serves (and real recordings were later normalised to):
	// enums as numbers, "certificate 1", content "content".
	job := realJob(t, "kcc_placeholder_importjob.json")
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, err := attest.Verify(statementOf(job), realRoots(t), &k.PublicKey, time.Now())
	refused(t, err, "certificate does not parse")
}

func TestTamperedRealStatementIsRefused(t *testing.T) {
	job := realJob(t, "kcc_real_importjob_rsa3072.json")
	st := statementOf(job)
	blob := gunzip(t, st.Content)
	for _, at := range []int{20, len(blob) / 2, len(blob) - 300, len(blob) - 1} {
		b := append([]byte{}, blob...)
		b[at] ^= 0x01
		st.Content = gzipBytes(b)
		_, err := attest.Verify(st, realRoots(t), rsaPub(t, job.GetPublicKey().GetPem()), job.GetGenerateTime().AsTime())
		refused(t, err, "signature does not verify")
	}
}

func TestWrongRootsAreRefused(t *testing.T) {
	job := realJob(t, "kcc_real_importjob_rsa3072.json")
	pub := rsaPub(t, job.GetPublicKey().GetPem())
	a := authority(t)
	at := job.GetGenerateTime().AsTime()
	real := realRoots(t)
	_, err := attest.Verify(statementOf(job), a.Roots(), pub, at)
	refused(t, err, "is signed by the manufacturer root given")
	_, err = attest.Verify(statementOf(job), attest.Roots{Manufacturer: real.Manufacturer, Owner: a.Roots().Owner}, pub, at)
	refused(t, err, "not both signed by the owner root given")
	_, err = attest.Verify(statementOf(job), attest.Roots{}, pub, at)
	refused(t, err, "no trust roots")
}

func TestRootsArePinnedByKeyNotName(t *testing.T) {
	// Two test authorities use the same names; only the keys differ.
	a, b := authority(t), otherAuthority(t)
	k := wrappingKey(t)
	_, err := attest.Verify(b.Attest(&k.PublicKey), a.Roots(), &k.PublicKey, time.Now())
	refused(t, err, "is signed by the manufacturer root given")
}

func TestChainsOfDifferentHSMsAreRefused(t *testing.T) {
	a, b := authority(t), otherAuthority(t)
	k := wrappingKey(t)
	roots := attest.Roots{Manufacturer: a.Roots().Manufacturer, Owner: b.Roots().Owner}
	// Manufacturer chain of A, Google chain of B: each chain holds, but
	// they certify different keys.
	st := a.Attest(&k.PublicKey)
	st.GoogleCardCerts, st.GooglePartCerts = b.GoogleCardCerts, b.GooglePartCerts
	_, err := attest.Verify(st, roots, &k.PublicKey, time.Now())
	refused(t, err, "another key than the manufacturer's card certificate")
	// An extra or missing certificate is refused too.
	st = a.Attest(&k.PublicKey)
	st.CaviumCerts = append(st.CaviumCerts, st.CaviumCerts[0])
	_, err = attest.Verify(st, a.Roots(), &k.PublicKey, time.Now())
	refused(t, err, "expected 2, 1 and 1")
	// A swapped order of the manufacturer chain is still understood.
	st = a.Attest(&k.PublicKey)
	st.CaviumCerts[0], st.CaviumCerts[1] = st.CaviumCerts[1], st.CaviumCerts[0]
	if _, err := attest.Verify(st, a.Roots(), &k.PublicKey, time.Now()); err != nil {
		t.Fatalf("chain given card first was refused: %v", err)
	}
}

func TestStatementSignedByAnotherPartitionIsRefused(t *testing.T) {
	a, b := authority(t), otherAuthority(t)
	k := wrappingKey(t)
	// B's partition signs; A's chains are attached.
	st := b.Attest(&k.PublicKey)
	good := a.Attest(&k.PublicKey)
	st.CaviumCerts, st.GoogleCardCerts, st.GooglePartCerts = good.CaviumCerts, good.GoogleCardCerts, good.GooglePartCerts
	_, err := attest.Verify(st, a.Roots(), &k.PublicKey, time.Now())
	refused(t, err, "signature does not verify")
}

func TestEmulatorStyleAttestationVerifies(t *testing.T) {
	a := authority(t)
	k := wrappingKey(t)
	res, err := attest.Verify(a.Attest(&k.PublicKey), a.Roots(), &k.PublicKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Attributes, "CKA_EXTRACTABLE=false") {
		t.Errorf("attributes %q", res.Attributes)
	}
}

func TestWrappingKeyMismatchIsRefused(t *testing.T) {
	job := realJob(t, "kcc_real_importjob_rsa3072.json")
	other := wrappingKey(t)
	_, err := attest.Verify(statementOf(job), realRoots(t), &other.PublicKey, job.GetGenerateTime().AsTime())
	refused(t, err, "modulus is not the job's wrapping public key")

	a := authority(t)
	k := wrappingKey(t)
	_, err = attest.Verify(a.Attest(&k.PublicKey), a.Roots(), &other.PublicKey, time.Now())
	refused(t, err, "modulus is not the job's wrapping public key")
	// Same modulus but the EKCV of another key: refused too.
	objs := attesttest.KeyPair(&k.PublicKey)
	for _, o := range objs {
		o.Attrs[attest.AttrVendorEKCV] = attesttest.KeyPair(&other.PublicKey)[0].Attrs[attest.AttrVendorEKCV]
	}
	_, err = attest.Verify(a.Sign(objs), a.Roots(), &k.PublicKey, time.Now())
	refused(t, err, "check value")
}

func TestExtractableOrImportedWrappingKeyIsRefused(t *testing.T) {
	a := authority(t)
	k := wrappingKey(t)
	for _, c := range []struct {
		attr  uint32
		value byte
		want  string
	}{
		{attest.AttrExtractable, 1, "CKA_EXTRACTABLE=true"},
		{attest.AttrNeverExtractable, 0, "CKA_NEVER_EXTRACTABLE=false"},
		{attest.AttrLocal, 0, "CKA_LOCAL=false"},
		{attest.AttrSensitive, 0, "CKA_SENSITIVE=false"},
		{attest.AttrAlwaysSensitive, 0, "CKA_ALWAYS_SENSITIVE=false"},
	} {
		objs := attesttest.KeyPair(&k.PublicKey)
		objs[1].Attrs[c.attr] = []byte{c.value}
		_, err := attest.Verify(a.Sign(objs), a.Roots(), &k.PublicKey, time.Now())
		refused(t, err, c.want)
		// A missing attribute proves nothing either.
		objs = attesttest.KeyPair(&k.PublicKey)
		delete(objs[1].Attrs, c.attr)
		_, err = attest.Verify(a.Sign(objs), a.Roots(), &k.PublicKey, time.Now())
		refused(t, err, "has no")
	}
	// Only the public half attested: nothing about the private key.
	_, err := attest.Verify(a.Sign(attesttest.KeyPair(&k.PublicKey)[:1]), a.Roots(), &k.PublicKey, time.Now())
	refused(t, err, "attests no private key")
}

func TestAttestationOfAnotherKindOfKeyIsRefused(t *testing.T) {
	// A genuine EC P-256 key-version attestation with its genuine chain
	// (given partition cert first, card cert second, Google partition then
	// card): the chains and the signature hold, but it is no RSA wrapping
	// key.
	certs := splitPEM(t, "testdata/peculiar_ecc_p256_chains.pem")
	content, err := os.ReadFile("testdata/peculiar_ecc_p256_attestation.dat")
	if err != nil {
		t.Fatal(err)
	}
	st := attest.Statement{Format: attest.FormatCaviumV2Compressed, Content: content,
		CaviumCerts: certs[0:2], GooglePartCerts: certs[2:3], GoogleCardCerts: certs[3:4]}
	k := wrappingKey(t)
	_, err = attest.Verify(st, realRoots(t), &k.PublicKey, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	refused(t, err, "is not an RSA key")
}

func TestUnknownFormatsAreRefused(t *testing.T) {
	a := authority(t)
	k := wrappingKey(t)
	for _, f := range []attest.Format{attest.FormatUnspecified, attest.FormatCaviumV1Compressed, attest.FormatCaviumV209, 99} {
		st := a.Attest(&k.PublicKey)
		st.Format = f
		_, err := attest.Verify(st, a.Roots(), &k.PublicKey, time.Now())
		refused(t, err, "is not one kmsbridge can verify")
	}
}

func TestCertificatesOutsideTheirValidityAreRefused(t *testing.T) {
	a := authority(t)
	k := wrappingKey(t)
	_, err := attest.Verify(a.Attest(&k.PublicKey), a.Roots(), &k.PublicKey, time.Now().Add(20*365*24*time.Hour))
	refused(t, err, "not at")
}

func TestRealBlobsParse(t *testing.T) {
	// Every genuine statement on file parses to its objects, with the
	// attributes the docs describe; an imported key shows LOCAL=false.
	for file, want := range map[string]int{
		"peculiar_ecc_p256_attestation.dat":            2,
		"carbon_contractors_secp256k1_attestation.dat": 2,
		"peculiar_rsa4096_imported_attestation.dat":    1,
	} {
		content, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		blob := maybeGunzip(content)
		objs, err := attest.Parse(blob[:len(blob)-256])
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(objs) != want {
			t.Fatalf("%s: %d objects, want %d", file, len(objs), want)
		}
		if file == "peculiar_rsa4096_imported_attestation.dat" {
			if local, _, _ := objs[0].Bool(attest.AttrLocal); local {
				t.Errorf("imported key parsed as LOCAL")
			}
		}
	}
}

func TestTruncatedStatementsAreRefusedNotPanics(t *testing.T) {
	job := realJob(t, "kcc_real_importjob_rsa3072.json")
	blob := gunzip(t, statementOf(job).Content)
	body := blob[:len(blob)-256]
	for n := 0; n < len(body); n += 7 {
		if _, err := attest.Parse(body[:n]); err == nil {
			t.Fatalf("a statement cut to %d bytes parsed", n)
		}
	}
}

func FuzzParse(f *testing.F) {
	a, err := attesttest.New(time.Now())
	if err != nil {
		f.Fatal(err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 1024)
	f.Add(attest.Marshal(attesttest.KeyPair(&k.PublicKey), 0))
	_ = a
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := attest.Parse(b)
		if err == nil && len(objs) == 0 {
			t.Fatal("no error and no object")
		}
	})
}

var (
	authOnce   sync.Once
	authA      *attesttest.Authority
	authB      *attesttest.Authority
	authErr    error
	wkOnce     sync.Once
	wk         *rsa.PrivateKey
	wkOtherErr error
)

func authority(t *testing.T) *attesttest.Authority {
	t.Helper()
	authOnce.Do(func() {
		if authA, authErr = attesttest.New(time.Now()); authErr == nil {
			authB, authErr = attesttest.New(time.Now())
		}
	})
	if authErr != nil {
		t.Fatal(authErr)
	}
	return authA
}

func otherAuthority(t *testing.T) *attesttest.Authority {
	authority(t)
	return authB
}

func wrappingKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maybeGunzip(b []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return b
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return b
	}
	return out
}

func gzipBytes(b []byte) []byte {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return z.Bytes()
}

func splitPEM(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(b)))
	}
}
