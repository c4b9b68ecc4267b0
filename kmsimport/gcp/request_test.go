package gcp

import (
	"errors"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestCheckEndpoint(t *testing.T) {
	for _, c := range []struct {
		url     string
		allowed []string
		ok      bool
		want    string
	}{
		{"", nil, true, ""},
		{"https://cloudkms.googleapis.com:443", nil, true, ""},
		{"https://cloudkms.europe-west1.rep.googleapis.com:443", nil, true, ""},
		{"http://127.0.0.1:9000", []string{"http://127.0.0.1:9000"}, true, ""},
		{"http://127.0.0.1:9000", nil, false, "--allow-endpoint"},
		{"http://cloudkms.googleapis.com:443", nil, false, "plain http"},
		{"http://cloudkms.googleapis.com:443", []string{"http://cloudkms.googleapis.com:443"}, false, "plain http"},
		{"https://cloudkms.googleapis.com:8443", nil, false, "not a Google endpoint"},
		{"https://cloudkms.us-east1.rep.googleapis.com:443", nil, true, ""},
		{"https://restricted.googleapis.com:443", nil, true, ""},
		{"https://googleapis.com:443", nil, false, "not a Google endpoint"},
		{"https://user:pw@cloudkms.googleapis.com:443", nil, false, "credentials"},
		{"https://kms.example.com:443", nil, false, "not a Google endpoint"},
		{"https://kms.example.com:443", []string{"https://kms.example.com:443"}, true, ""},
		{"https://evil.googleapis.com.example.com:443", nil, false, "not a Google endpoint"},
		{"cloudkms.googleapis.com:443", nil, false, "not a Cloud KMS endpoint URL"},
		{"https://cloudkms.googleapis.com", nil, false, "HOST:PORT"},
		{"https://cloudkms.googleapis.com:443/v1?x=1", nil, false, "not a Cloud KMS endpoint URL"},
	} {
		err := CheckEndpoint(c.url, c.allowed)
		if c.ok != (err == nil) || (err != nil && (!errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), c.want))) {
			t.Errorf("CheckEndpoint(%q, %q) = %v", c.url, c.allowed, err)
		}
	}
}

func good() Request {
	return Request{Project: "test-project", Location: "us-central1", KeyRing: "ring", CryptoKey: "key",
		KeyLabel: "k", Generate: true, ManufacturerRoot: "m.pem", OwnerRoot: "o.pem"}
}

func TestValidateRefusesBadInputs(t *testing.T) {
	for _, c := range []struct {
		edit func(*Request)
		want string
	}{
		{func(r *Request) { r.Project = "" }, "--gcp-project"},
		{func(r *Request) { r.Project = "My Project" }, "is not a project ID"},
		{func(r *Request) { r.Project = "123456789012" }, "is not a project ID"},
		{func(r *Request) { r.Location = "" }, "--gcp-location"},
		{func(r *Request) { r.Location = "us-central1/x" }, "is not a location"},
		{func(r *Request) { r.KeyRing = "a b" }, "is not a key ring ID"},
		{func(r *Request) { r.CryptoKey = strings.Repeat("k", 64) }, "is not a crypto key ID"},
		{func(r *Request) { r.ImportJob = "../x" }, "is not an import job ID"},
		{func(r *Request) { r.ReimportVersion = "0" }, "is not a version number"},
		{func(r *Request) { r.ProtectionLevel = "EXTERNAL" }, "choose HSM"},
		{func(r *Request) { r.OwnerRoot = "" }, "--gcp-owner-root FILE"},
		{func(r *Request) { r.ProtectionLevel = "SOFTWARE" }, "has no attestation"},
		{func(r *Request) { r.Algorithm = "EXTERNAL_SYMMETRIC_ENCRYPTION" }, "is not one kmsbridge imports"},
		{func(r *Request) { r.KeyLabel = "" }, "--generate needs --key-label"},
		{func(r *Request) { r.Generate = false; r.KeyLabel = "" }, "no HSM key chosen"},
	} {
		r := good()
		c.edit(&r)
		err := r.Validate()
		if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", r, err, c.want)
		}
	}
	r := good()
	r.SkipAttestation, r.ManufacturerRoot, r.OwnerRoot = true, "", ""
	if err := r.Validate(); err != nil {
		t.Errorf("--gcp-skip-attestation without roots: %v", err)
	}
}

func TestParseKeyName(t *testing.T) {
	var r Request
	if !r.ParseKeyName("projects/p-123456/locations/global/keyRings/r/cryptoKeys/k") || r.Project != "p-123456" || r.Location != "global" || r.KeyRing != "r" || r.CryptoKey != "k" {
		t.Fatalf("%+v", r)
	}
	if r.ParseKeyName("projects/p/locations/global/keyRings/r") {
		t.Fatal("a key ring name parsed as a key")
	}
}

func TestWrapMethodsStrongestFirstAndOAEPOnlyForSecrets(t *testing.T) {
	secret := target{}.WrapMethods(hsm.AES256())
	if len(secret) != 6 || secret[0].Name != "RSA_OAEP_4096_SHA256_AES_256" || secret[len(secret)-1].Name != "RSA_OAEP_3072_SHA1_AES_256" {
		t.Fatalf("%v", secret)
	}
	for _, w := range (target{}).WrapMethods(hsm.ECKey(hsm.P256)) {
		if !w.Method.RSAAES {
			t.Fatalf("direct OAEP %s offered for an EC key, which Cloud KMS cannot take in one OAEP block", w.Name)
		}
	}
}
