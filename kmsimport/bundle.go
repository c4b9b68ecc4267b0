package kmsimport

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// The file formats of the air-gapped split. A new format gets a new
// version string; readers refuse versions they do not know. Bundle format
// 2 added KmsEndpoint: where the wrapping public key came from. Bundle
// format 3 and wrapped format 2 added Cloud and the clouds' sections
// (splitcloud.go); the earlier versions are read as AWS files.
const (
	BundleFormat  = "kmsbridge-import-bundle/3"
	WrappedFormat = "kmsbridge-wrapped-material/2"

	bundleFormatAWS2  = "kmsbridge-import-bundle/2"
	wrappedFormatAWS1 = "kmsbridge-wrapped-material/1"
)

// Bundle is what `prepare` hands to the offline HSM host: the KMS key and
// one GetParametersForImport answer. The public key and import token are
// one pair, valid until ParametersValidTo.
type Bundle struct {
	Format string `json:"Format"`
	// Cloud is "aws", "gcp" or "azure" ("" in a format-2 AWS bundle).
	Cloud             string    `json:"Cloud,omitempty"`
	KeyId             string    `json:"KeyId"`
	Arn               string    `json:"Arn"`
	Region            string    `json:"Region"`
	KeySpec           string    `json:"KeySpec"`
	KeyUsage          string    `json:"KeyUsage"`
	WrappingAlgorithm string    `json:"WrappingAlgorithm"`
	WrappingKeySpec   string    `json:"WrappingKeySpec"`
	PublicKey         []byte    `json:"PublicKey"`
	PublicKeySha256   string    `json:"PublicKeySha256"`
	ImportToken       []byte    `json:"ImportToken"`
	ImportTokenSha256 string    `json:"ImportTokenSha256"`
	ParametersValidTo time.Time `json:"ParametersValidTo"`
	PreparedAt        time.Time `json:"PreparedAt"`
	// AuditPublicKeySha256, when set (prepare --audit-public-key), is the
	// fingerprint of the ceremony's audit key: wrap must sign with it, and
	// upload with this bundle accepts only a wrapped file it signed.
	AuditPublicKeySha256 string `json:"AuditPublicKeySha256,omitempty"`
	// KmsEndpoint is the endpoint GetParametersForImport was answered
	// by, with its TLS identity: wrap shows it and applies the endpoint
	// policy to it before wrapping.
	KmsEndpoint *Endpoint `json:"KmsEndpoint"`
	// Gcp and Azure are the sections of a Google or Azure bundle.
	Gcp   *GCPBundle  `json:"Gcp,omitempty"`
	Azure *AzureSplit `json:"Azure,omitempty"`
}

// Wrapped is what `wrap` hands back to the online host: the wrapped
// material for one bundle, who wrapped it with what, and the HSM's
// evidence the upload checks KMS against.
type Wrapped struct {
	Format                     string            `json:"Format"`
	Cloud                      string            `json:"Cloud,omitempty"`
	BundleSha256               string            `json:"BundleSha256"`
	KeyId                      string            `json:"KeyId"`
	Arn                        string            `json:"Arn"`
	Region                     string            `json:"Region"`
	KeySpec                    string            `json:"KeySpec"`
	WrappingAlgorithm          string            `json:"WrappingAlgorithm"`
	WrappingKeySpec            string            `json:"WrappingKeySpec"`
	PublicKeySha256            string            `json:"PublicKeySha256"`
	ImportToken                []byte            `json:"ImportToken"`
	ImportTokenSha256          string            `json:"ImportTokenSha256"`
	ParametersValidTo          time.Time         `json:"ParametersValidTo"`
	EncryptedKeyMaterial       []byte            `json:"EncryptedKeyMaterial"`
	EncryptedKeyMaterialSha256 string            `json:"EncryptedKeyMaterialSha256"`
	Token                      hsm.TokenIdentity `json:"Token"`
	HSMKey                     HSMKey            `json:"HsmKey"`
	Evidence                   Evidence          `json:"Evidence"`
	Warnings                   []string          `json:"Warnings,omitempty"`
	WrappedAt                  time.Time         `json:"WrappedAt"`
	// AuditPublicKeySha256 and AuditKeyId name the audit key that signs
	// this file (FILE.sig), when one was in use: upload then refuses the
	// file unless that signature verifies.
	AuditPublicKeySha256 string `json:"AuditPublicKeySha256,omitempty"`
	AuditKeyId           string `json:"AuditKeyId,omitempty"`
	// Gcp and Azure are the sections of a Google or Azure wrapped file.
	Gcp   *GCPWrapped `json:"Gcp,omitempty"`
	Azure *AzureSplit `json:"Azure,omitempty"`
}

func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ReadBundle reads and checks a bundle file: strict parsing, a known
// format, a public key that is what its fingerprint says and the size its
// spec says, the cloud's own checks (SplitCloud.CheckBundle: for AWS, a
// wrapping KMS accepts for the key spec), parameters not expired at now. It returns the bundle and the SHA-256 of the file.
func ReadBundle(path string, now time.Time) (*Bundle, string, error) {
	var b Bundle
	raw, err := ReadStrict("--bundle", path, &b)
	if err != nil {
		return nil, "", err
	}
	if err := CheckBundleFormat(path, &b); err != nil {
		return nil, "", err
	}
	if err := missing(path, field{"KeyId", b.KeyId == ""}, field{"KeySpec", b.KeySpec == ""}, field{"WrappingAlgorithm", b.WrappingAlgorithm == ""},
		field{"WrappingKeySpec", b.WrappingKeySpec == ""}, field{"PublicKey", len(b.PublicKey) == 0}, field{"ImportToken", len(b.ImportToken) == 0},
		field{"ParametersValidTo", b.ParametersValidTo.IsZero()}); err != nil {
		return nil, "", err
	}
	if Fingerprint(b.PublicKey) != b.PublicKeySha256 {
		return nil, "", invalid("%s: PublicKeySha256 is %s but the public key in the file hashes to %s: the file was altered; get a fresh bundle with kmsbridge prepare", path, Excerpt(b.PublicKeySha256), Fingerprint(b.PublicKey))
	}
	if SHA256Hex(b.ImportToken) != b.ImportTokenSha256 {
		return nil, "", invalid("%s: ImportTokenSha256 does not match the import token in the file: the file was altered; get a fresh bundle with kmsbridge prepare", path)
	}
	wks, err := ParseWrappingKeySpec(b.WrappingKeySpec)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	if err := checkBundleCloud(path, &b); err != nil {
		return nil, "", err
	}
	if _, err := ParseWrappingPublicKey(b.PublicKey, wks); err != nil {
		return nil, "", invalid("%s: %v", path, err)
	}
	if fp := b.AuditPublicKeySha256; fp != "" && !isSHA256Hex(fp) {
		return nil, "", invalid("%s: AuditPublicKeySha256 %q is not a SHA-256 in hex: the file was altered; get a fresh bundle with kmsbridge prepare", path, Excerpt(fp))
	}
	if !now.Before(b.ParametersValidTo) {
		return nil, "", invalid("%s: the import parameters expired at %s: %s", path, b.ParametersValidTo.UTC().Format(time.RFC3339), expiredAdvice(&b))
	}
	return &b, SHA256Hex(raw), nil
}

// CheckBundleFormat accepts the current format, whose Cloud names the
// cloud ("" is AWS), and format 2, which was AWS's only.
func CheckBundleFormat(path string, b *Bundle) error {
	switch {
	case b.Format == BundleFormat: // Cloud "" is AWS
		return nil
	case b.Format == bundleFormatAWS2 && b.Cloud == "":
		return nil
	}
	return invalid("%s: format %q (cloud %q) is not %q: not a kmsbridge import bundle, or from another version", path, Excerpt(b.Format), Excerpt(b.Cloud), BundleFormat)
}

// ReadWrapped reads and checks a wrapped-material file: strict parsing, a
// known format, digests that match their contents. With a bundle, it must
// be the bundle's (same file digest, key, public key and token).
func ReadWrapped(path string, bundle *Bundle, bundleSHA256 string) (*Wrapped, error) {
	var w Wrapped
	if _, err := ReadStrict("--wrapped", path, &w); err != nil {
		return nil, err
	}
	switch {
	case w.Format == WrappedFormat: // Cloud "" is AWS
	case w.Format == wrappedFormatAWS1 && w.Cloud == "":
	default:
		return nil, invalid("%s: format %q (cloud %q) is not %q: not a kmsbridge wrapped-material file, or from another version", path, Excerpt(w.Format), Excerpt(w.Cloud), WrappedFormat)
	}
	if err := missing(path, field{"KeyId", w.KeyId == ""}, field{"KeySpec", w.KeySpec == ""}, field{"WrappingAlgorithm", w.WrappingAlgorithm == ""},
		field{"ImportToken", len(w.ImportToken) == 0}, field{"EncryptedKeyMaterial", len(w.EncryptedKeyMaterial) == 0},
		field{"HsmKey.KeyId", w.HSMKey.KeyID == ""}); err != nil {
		return nil, err
	}
	if SHA256Hex(w.EncryptedKeyMaterial) != w.EncryptedKeyMaterialSha256 || SHA256Hex(w.ImportToken) != w.ImportTokenSha256 {
		return nil, invalid("%s: a digest does not match its content (EncryptedKeyMaterialSha256 or ImportTokenSha256): the file was altered or damaged; wrap again", path)
	}
	if err := checkWrappedCloud(path, &w); err != nil {
		return nil, err
	}
	if fp := w.AuditPublicKeySha256; fp != "" && !isSHA256Hex(fp) {
		return nil, invalid("%s: AuditPublicKeySha256 %q is not a SHA-256 in hex: the file was altered or damaged; wrap again", path, Excerpt(fp))
	}
	if bundle != nil {
		switch {
		case w.BundleSha256 != bundleSHA256:
			return nil, invalid("%s was wrapped from another bundle (SHA-256 %s), not from this one (%s): pair each wrapped file with the bundle it came from", path, Excerpt(w.BundleSha256), bundleSHA256)
		case CloudOf(w.Cloud) != CloudOf(bundle.Cloud):
			return nil, invalid("%s is for cloud %s, but the bundle is for %s: pair each wrapped file with the bundle it came from", path, CloudOf(w.Cloud), CloudOf(bundle.Cloud))
		case w.KeyId != bundle.KeyId || w.PublicKeySha256 != bundle.PublicKeySha256 || !bytes.Equal(w.ImportToken, bundle.ImportToken):
			return nil, invalid("%s does not belong to the bundle: key, public key or import token differ", path)
		}
	}
	return &w, nil
}

// isSHA256Hex reports whether s is 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 64 && strings.ToLower(s) == s
}
