package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestCatalogueSplit is the catalogue of bad inputs to prepare, wrap,
// upload, approve, verify, delete-material and audit-key create.
func TestCatalogueSplit(t *testing.T) {
	t.Parallel()
	c := newCatalogue(t)
	c.withSplit(t)
	fp := c.fingerprint
	out := c.path("out.json")
	prep := func(extra ...string) []string {
		return append([]string{"prepare", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapping-key-spec", "RSA_2048", "--wrapping-algorithm", "RSAES_OAEP_SHA_1"}, extra...)
	}
	prepOut := func(extra ...string) []string { return prep(append([]string{"--out", out}, extra...)...) }
	wrap := func(bundle string, extra ...string) []string {
		return append([]string{"wrap", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", bundle, "--expect-fingerprint", fp,
			"--key-label", "new", "--generate", "--out", out}, extra...)
	}
	upload := func(wrapped string, extra ...string) []string {
		return append([]string{"upload", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapped", wrapped, "--no-expiry", "--allow-unsigned"}, extra...)
	}
	bundleVariant := func(name string, edit func(m map[string]any)) string { return c.variant(t, c.bundle, name, edit) }
	wrappedVariant := func(name string, edit func(m map[string]any)) string { return c.variant(t, c.wrapped, name, edit) }
	var w kmsimport.Wrapped
	readJSON(t, c.wrapped, &w)
	help := "--help"
	auditKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&auditKey.PublicKey)
	auditPEM := c.file(t, "audit.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), 0o644)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherWrapped := c.file(t, "signed-other.json", readFileString(t, c.wrapped), 0o600)
	if _, err := awskms.SignWrapped(otherWrapped, &w, otherKey, []byte{1}); err != nil {
		t.Fatal(err)
	}
	otherSig := otherWrapped + awskms.SignatureSuffix
	badFile := "give the path of the file itself"

	cases := []badCase{
		// prepare
		{"prepare unknown flag", prepOut("--key-label", "x"), 2, []string{"flag provided but not defined: -key-label", "kmsbridge prepare --help"}},
		{"prepare missing out", prep(), 2, []string{`required flag "out" not set`, "kmsbridge prepare --help"}},
		{"prepare out exists", prep("--out", c.bundle), 2, []string{"already exists", "choose a new name"}},
		{"prepare out dir missing", prep("--out", c.path("nodir/b.json")), 2, []string{"does not exist", "mkdir -p"}},
		{"prepare out parent is a file", prep("--out", c.path("plain.txt/b.json")), 2, []string{"plain.txt", "not a directory"}},
		{"prepare out is a fifo", prep("--out", c.path("fifo")), 2, []string{"already exists"}},
		{"prepare tag aws", prepOut("--tag", "aws:x=y"), 2, []string{"reserved for AWS"}},
		{"prepare tag duplicate", prepOut("--tag", "a=1", "--tag", "a=2"), 2, []string{"given twice"}},
		{"prepare alias reserved", prepOut("--alias", "alias/aws/x"), 2, []string{"reserved for AWS managed keys"}},
		{"prepare description too long", prepOut("--description", strings.Repeat("d", 9000)), 2, []string{"--description", "at most 8192"}},
		{"prepare unknown key spec", prepOut("--key-spec", "AES_512"), 2, []string{"unknown key spec", "choose one of"}},
		{"prepare pkcs1", prep("--out", out, "--wrapping-algorithm", "RSAES_PKCS1_V1_5"), 2, []string{"RSAES_PKCS1_V1_5 is refused"}},
		{"prepare bad wrapping key spec", prep("--out", out, "--wrapping-key-spec", "RSA_512"), 2, []string{"unknown wrapping key spec"}},
		{"prepare kms key not external", prepOut("--kms-key-id", c.awsKeyID), 2, []string{"origin AWS_KMS, not EXTERNAL"}},
		{"prepare unknown kms key", prepOut("--kms-key-id", "11111111-2222-3333-4444-555555555555"), 4, []string{"NotFoundException", "check --kms-key-id"}},
		{"prepare endpoint not url", append(prepOut(), "--endpoint-url", "::"), 2, []string{"is not an endpoint URL"}},
		{"prepare endpoint not kms", append(prepOut(), "--endpoint-url", c.notKMS, "--allow-endpoint", c.notKMS), 4, []string{"does not speak the KMS API", "check --endpoint-url"}},
		{"prepare unknown profile", prepOut("--profile", "nosuch"), 2, []string{`AWS profile "nosuch"`}},
		{"prepare record dir missing", prepOut("--record", c.path("nodir/r.jsonl")), 2, []string{"--record", "mkdir -p"}},

		// wrap: the bundle file itself
		{"wrap missing bundle flag", []string{"wrap", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--out", out}, 2, []string{`required flag "bundle" not set`, help}},
		{"wrap missing out flag", []string{"wrap", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle}, 2, []string{`required flag "out" not set`, help}},
		{"wrap bundle missing", wrap(c.path("nosuch.json")), 2, []string{"--bundle", "no such file", "check the path"}},
		{"wrap bundle directory", wrap(c.path("subdir")), 2, []string{"--bundle", "is a directory", badFile}},
		{"wrap bundle fifo", wrap(c.path("fifo")), 2, []string{"--bundle", "FIFO", badFile}},
		{"wrap bundle dev zero", wrap(c.path("zero")), 2, []string{"--bundle", "character device", badFile}},
		{"wrap bundle too large", wrap(c.path("big.bin")), 2, []string{"--bundle", "larger than 1 MiB", "right file"}},
		{"wrap bundle empty", wrap(c.path("empty.json")), 2, []string{"is malformed: the file is empty", "unedited"}},
		{"wrap bundle not json", wrap(c.path("notjson.json")), 2, []string{"not valid JSON at byte", "unedited"}},
		{"wrap bundle array", wrap(c.path("array.json")), 2, []string{"holds a JSON array, not an object"}},
		{"wrap bundle wrong type", wrap(bundleVariant("type.json", func(m map[string]any) { m["KeyId"] = 42 })), 2, []string{"field KeyId holds a JSON number", "wrong type"}},
		{"wrap bundle bad base64", wrap(bundleVariant("b64.json", func(m map[string]any) { m["PublicKey"] = "!!not base64!!" })), 2, []string{"is malformed", "unedited"}},
		{"wrap bundle bad time", wrap(bundleVariant("time.json", func(m map[string]any) { m["ParametersValidTo"] = "tomorrow" })), 2, []string{"is malformed", "unedited"}},
		{"wrap bundle unknown field", wrap(bundleVariant("unknown.json", func(m map[string]any) { m["Extra"] = 1 })), 2, []string{`unknown field "Extra"`}},
		{"wrap bundle trailing data", wrap(c.file(t, "trailing.json", readString(t, c.bundle)+"{}", 0o600)), 2, []string{"data after the JSON object"}},
		{"wrap bundle format", wrap(bundleVariant("format.json", func(m map[string]any) { m["Format"] = "something/9" })), 2, []string{"not a kmsbridge import bundle"}},
		{"wrap bundle huge format excerpted", wrap(bundleVariant("hugeformat.json", func(m map[string]any) { m["Format"] = strings.Repeat("f", 500000) })), 2, []string{"(500000 characters)", "not a kmsbridge import bundle"}},
		{"wrap bundle missing key id", wrap(bundleVariant("missing.json", func(m map[string]any) { delete(m, "KeyId") })), 2, []string{"field KeyId is missing"}},
		{"wrap bundle missing token", wrap(bundleVariant("notoken.json", func(m map[string]any) { delete(m, "ImportToken") })), 2, []string{"field ImportToken is missing"}},
		{"wrap bundle fingerprint altered", wrap(bundleVariant("fp.json", func(m map[string]any) { m["PublicKeySha256"] = strings.Repeat("0", 64) })), 2, []string{"the file was altered", "kmsbridge prepare"}},
		{"wrap bundle token altered", wrap(bundleVariant("tok.json", func(m map[string]any) { m["ImportToken"] = base64.StdEncoding.EncodeToString([]byte("forged")) })), 2, []string{"ImportTokenSha256 does not match", "kmsbridge prepare"}},
		{"wrap bundle arn mismatch", wrap(bundleVariant("arn.json", func(m map[string]any) { m["Arn"] = "arn:aws:kms:us-east-1:111122223333:key/other" })), 2, []string{"is not the ARN of KeyId"}},
		{"wrap bundle expired", wrap(bundleVariant("expired.json", func(m map[string]any) { m["ParametersValidTo"] = "2020-01-01T00:00:00Z" })), 2, []string{"expired", "kmsbridge prepare --kms-key-id"}},
		{"wrap bundle unknown spec", wrap(bundleVariant("spec.json", func(m map[string]any) { m["KeySpec"] = "AES_512" })), 2, []string{"unknown key spec"}},
		{"wrap bundle rsa under oaep", wrap(bundleVariant("rsa.json", func(m map[string]any) { m["KeySpec"] = "RSA_2048" })), 2, []string{"too large for RSA-OAEP alone"}},
		{"wrap bundle unknown wrapping", wrap(bundleVariant("alg.json", func(m map[string]any) { m["WrappingAlgorithm"] = "ROT13" })), 2, []string{"unknown wrapping algorithm"}},
		// wrap: the officers, the HSM key, the output
		{"wrap fingerprint mismatch", wrap(c.bundle, "--expect-fingerprint", strings.Repeat("ab", 32)), 2, []string{"not the " + strings.Repeat("ab", 32) + " read aloud", "run prepare again"}},
		{"wrap no fingerprint and no terminal", []string{"wrap", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle, "--key-label", "new", "--generate", "--out", out}, 2, []string{"no terminal", "--expect-fingerprint"}},
		{"wrap out exists", wrap(c.bundle, "--out", c.wrapped), 2, []string{"already exists", "choose a new name"}},
		{"wrap out dir missing", wrap(c.bundle, "--out", c.path("nodir/w.json")), 2, []string{"does not exist", "mkdir -p"}},
		{"wrap label newline", wrap(c.bundle, "--key-label", "a\nb"), 2, []string{"--key-label", "control character"}},
		{"wrap label exists", wrap(c.bundle, "--key-label", "existing"), 3, []string{`already has an object labelled "existing"`, "drop --generate"}},
		{"wrap hsm-key-id not hex", []string{"wrap", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle, "--expect-fingerprint", fp, "--hsm-key-id", "zz", "--out", out}, 2, []string{"is not hex"}},
		{"wrap no key chosen", []string{"wrap", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle, "--expect-fingerprint", fp, "--out", out}, 2, []string{"no HSM key chosen", "--generate"}},
		{"wrap wrong pin", append([]string{"KMSBRIDGE_PIN=0000"}, wrap(c.bundle)...), 3, []string{"CKR_PIN_INCORRECT", "the PIN is wrong"}},
		{"wrap record is directory", wrap(c.bundle, "--record", c.path("subdir")), 2, []string{"--record", "is a directory"}},
		{"wrap audit key unknown", wrap(c.bundle, "--record", c.record, "--audit-key", "nosuch"), 3, []string{"kmsbridge audit-key create"}},

		// upload
		{"upload missing wrapped flag", []string{"upload", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--no-expiry"}, 2, []string{`required flag "wrapped" not set`, help}},
		{"upload wrapped missing", upload(c.path("nosuch.json")), 2, []string{"--wrapped", "no such file"}},
		{"upload wrapped directory", upload(c.path("subdir")), 2, []string{"--wrapped", "is a directory", badFile}},
		{"upload wrapped fifo", upload(c.path("fifo")), 2, []string{"--wrapped", "FIFO", badFile}},
		{"upload wrapped dev zero", upload(c.path("zero")), 2, []string{"--wrapped", "character device", badFile}},
		{"upload wrapped too large", upload(c.path("big.bin")), 2, []string{"--wrapped", "larger than 1 MiB"}},
		{"upload wrapped not json", upload(c.path("notjson.json")), 2, []string{"not valid JSON", "unedited"}},
		{"upload wrapped is a bundle", upload(c.bundle), 2, []string{"unknown field", "another tool or version"}},
		{"upload wrapped format", upload(wrappedVariant("wformat.json", func(m map[string]any) { m["Format"] = "x/1" })), 2, []string{"not a kmsbridge wrapped-material file"}},
		{"upload wrapped material altered", upload(wrappedVariant("wdamaged.json", func(m map[string]any) {
			m["EncryptedKeyMaterial"] = base64.StdEncoding.EncodeToString([]byte("not the blob"))
		})), 2, []string{"digest does not match", "wrap again"}},
		{"upload wrapped hsm key id not hex", upload(wrappedVariant("wid.json", func(m map[string]any) { m["HsmKey"].(map[string]any)["KeyId"] = "zz" })), 2, []string{"is not hex", "unedited"}},
		{"upload wrapped missing key id", upload(wrappedVariant("wmissing.json", func(m map[string]any) { delete(m, "KeyId") })), 2, []string{"field KeyId is missing"}},
		{"upload wrapped expired", upload(wrappedVariant("wexpired.json", func(m map[string]any) { m["ParametersValidTo"] = "2020-01-01T00:00:00Z" })), 2, []string{"expired", "wrap again"}},
		{"upload wrong bundle", upload(c.wrapped, "--bundle", bundleVariant("other.json", func(m map[string]any) { m["KeyId"] = "other" })), 2, []string{"another bundle", "pair each wrapped file"}},
		{"upload bundle directory", upload(c.wrapped, "--bundle", c.path("subdir")), 2, []string{"--bundle", "is a directory"}},
		{"upload no expiry", []string{"upload", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapped", c.wrapped}, 2, []string{"no expiry chosen", "--no-expiry"}},
		{"upload both expiries", upload(c.wrapped, "--valid-to", "2030-01-01"), 2, []string{"both --valid-to and --no-expiry"}},
		{"upload valid-to past", []string{"upload", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapped", c.wrapped, "--valid-to", "2020-01-01"}, 2, []string{"is in the past"}},
		{"upload endpoint not url", upload(c.wrapped, "--endpoint-url", "kms"), 2, []string{"is not an endpoint URL"}},
		{"upload endpoint not kms", upload(c.wrapped, "--endpoint-url", c.notKMS, "--allow-endpoint", c.notKMS), 4, []string{"does not speak the KMS API"}},
		{"upload unknown profile", upload(c.wrapped, "--profile", "nosuch"), 2, []string{`AWS profile "nosuch"`}},
		{"upload unsigned without allow-unsigned", []string{"upload", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapped", c.wrapped, "--no-expiry"}, 2, []string{"is not signed", "--audit-key", "--allow-unsigned"}},
		{"upload signature without public key", upload(c.wrapped, "--signature", otherSig), 2, []string{"nothing here vouches for", "--audit-public-key"}},
		{"upload audit public key not pem", upload(c.wrapped, "--audit-public-key", c.path("plain.txt")), 2, []string{"--audit-public-key", "audit-key create wrote"}},
		{"upload audit public key missing", upload(c.wrapped, "--audit-public-key", c.path("nosuch.pem")), 2, []string{"--audit-public-key", "no such file"}},
		{"upload signature missing", upload(c.wrapped, "--audit-public-key", auditPEM), 5, []string{"no signature", "--signature FILE", "--allow-unsigned does not accept"}},
		{"upload signature not json", upload(c.wrapped, "--audit-public-key", auditPEM, "--signature", c.path("notjson.json")), 2, []string{"not valid JSON"}},
		{"upload signature by another key", upload(c.wrapped, "--audit-public-key", auditPEM, "--signature", otherSig), 5, []string{"not by the ceremony's audit key", "do not upload"}},
		{"upload record fifo", upload(c.wrapped, "--record", c.path("fifo")), 2, []string{"--record", "FIFO"}},

		// approve
		{"approve missing bundle", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label}, 2, []string{`required flag "bundle" not set`, help}},
		{"approve bundle fifo", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--key-label", "new", "--bundle", c.path("fifo"), "--expect-fingerprint", fp}, 2, []string{"--bundle", "FIFO"}},
		{"approve fingerprint mismatch", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--key-label", "new", "--bundle", c.bundle, "--expect-fingerprint", strings.Repeat("cd", 32)}, 2, []string{"read aloud"}},
		{"approve so pin file world readable", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--key-label", "new", "--bundle", c.bundle, "--expect-fingerprint", fp, "--so-pin-file", c.path("pin-world.txt")}, 2, []string{"--so-pin-file", "chmod 600"}},
		{"approve so pin file missing", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--key-label", "new", "--bundle", c.bundle, "--expect-fingerprint", fp, "--so-pin-file", c.path("nosuch")}, 2, []string{"--so-pin-file", "no such file"}},
		{"approve no so pin", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--key-label", "new", "--bundle", c.bundle, "--expect-fingerprint", fp}, 3, []string{"KMSBRIDGE_SO_PIN", "--so-pin-file"}},
		{"approve no key label", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle, "--expect-fingerprint", fp}, 2, []string{"--key-label", "one named HSM key"}},
		{"approve revoke with key label", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle, "--revoke", "--key-label", "new"}, 2, []string{"--revoke", "drop --key-label"}},
		{"approve pin-file is not its flag", []string{"approve", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle, "--pin-file", c.goodPIN}, 2, []string{"flag provided but not defined: -pin-file"}},

		// verify
		{"verify missing kms key id", []string{"verify", "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL}, 2, []string{`required flag "kms-key-id" not set`, help}},
		{"verify hsm-key-id not hex", []string{"verify", "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.existing.KeyId, "--hsm-key-id", "nothex"}, 2, []string{"is not hex"}},
		{"verify no token", []string{"verify", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.existing.KeyId}, 2, []string{"exactly one of --token-label"}},
		{"verify unknown kms key", []string{"verify", "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", "11111111-2222-3333-4444-555555555555"}, 4, []string{"NotFoundException"}},
		{"verify endpoint not url", []string{"verify", "--token-label", c.tok.Label, "--endpoint-url", "x", "--kms-key-id", c.existing.KeyId}, 2, []string{"is not an endpoint URL"}},
		{"verify aws_kms key", []string{"verify", "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.awsKeyID, "--key-label", "existing"}, 5, []string{"AWS_KMS"}},
		{"verify link mismatch", []string{"verify", "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.existing.KeyId, "--key-label", "wrapped"}, 5, []string{"its tags link it to HSM key CKA_ID"}},

		// delete-material
		{"delete-material missing kms key id", []string{"delete-material", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--yes"}, 2, []string{`required flag "kms-key-id" not set`, help}},
		{"delete-material no terminal", []string{"delete-material", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.existing.KeyId}, 2, []string{"no terminal", "--yes"}},
		{"delete-material unknown key", []string{"delete-material", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", "11111111-2222-3333-4444-555555555555", "--yes"}, 4, []string{"NotFoundException"}},
		{"delete-material aws_kms key", []string{"delete-material", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.awsKeyID, "--yes"}, 2, []string{"AWS_KMS"}},
		{"delete-material endpoint not url", []string{"delete-material", "--endpoint-url", "x", "--kms-key-id", c.existing.KeyId, "--yes"}, 2, []string{"is not an endpoint URL"}},
		{"delete-material record dir missing", []string{"delete-material", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.existing.KeyId, "--yes", "--record", c.path("nodir/r.jsonl")}, 2, []string{"--record", "mkdir -p"}},

		// audit-key create
		{"audit-key missing label", []string{"audit-key", "create", "--token-label", c.tok.Label, "--out", out}, 2, []string{`required flag "label" not set`, "kmsbridge audit-key create --help"}},
		{"audit-key out exists", []string{"audit-key", "create", "--token-label", c.tok.Label, "--label", "a", "--out", c.bundle}, 2, []string{"already exists"}},
		{"audit-key out dir missing", []string{"audit-key", "create", "--token-label", c.tok.Label, "--label", "a", "--out", c.path("nodir/a.pem")}, 2, []string{"does not exist", "mkdir -p"}},
		{"audit-key label exists", []string{"audit-key", "create", "--token-label", c.tok.Label, "--label", "existing", "--out", out}, 3, []string{`"existing"`}},
		{"audit-key record dir missing", []string{"audit-key", "create", "--token-label", c.tok.Label, "--label", "a", "--out", out, "--record", c.path("nodir/r.jsonl")}, 2, []string{"--record", "mkdir -p"}},
	}
	_ = w
	c.run(t, cases)
}

func readString(t *testing.T, path string) string {
	t.Helper()
	var raw []byte
	var m map[string]any
	readJSON(t, path, &m)
	raw, _ = jsonMarshal(m)
	return string(raw)
}
