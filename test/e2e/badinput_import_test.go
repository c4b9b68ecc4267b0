package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCatalogueImport is the catalogue of bad inputs to the command line
// as a whole and to import: each one refused with its exit code and a
// message naming the problem and the next step, changing nothing.
func TestCatalogueImport(t *testing.T) {
	t.Parallel()
	c := newCatalogue(t)
	makeRawAESKey(t, c.tok, "clear", false, true)
	makeRawAESKey(t, c.tok, "stuck", true, false)
	imp := func(extra ...string) []string {
		return append([]string{"import", "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapping-key-spec", "RSA_2048"}, extra...)
	}
	gen := func(extra ...string) []string {
		return imp(append([]string{"--key-label", "new", "--generate", "--no-expiry"}, extra...)...)
	}
	env := func(kv string, args []string) []string { return append([]string{kv}, args...) }
	long := func(n int) string { return strings.Repeat("x", n) }
	var manyTags []string
	for i := 0; i < 47; i++ {
		manyTags = append(manyTags, "--tag", fmt.Sprintf("k%d=v", i))
	}
	help := "--help"

	cases := []badCase{
		// The command line itself.
		{"unknown command", []string{"imprt"}, 2, []string{`unknown command "imprt"`, help}},
		{"unknown subcommand", []string{"record", "check"}, 2, []string{`unknown command "check"`, "kmsbridge record --help"}},
		{"unknown flag on import", gen("--colour", "blue"), 2, []string{"flag provided but not defined: -colour", "kmsbridge import --help"}},
		{"pin on argv", gen("--pin", "1234"), 2, []string{"flag provided but not defined: -pin", help}},
		{"positional argument", append(gen(), "extra"), 2, []string{`unexpected argument "extra"`, "takes only flags"}},
		{"output format", gen("--output", "xml"), 2, []string{`--output "xml"`, "choose text or json"}},
		{"log level", gen("--log-level", "loud"), 2, []string{`--log-level "loud"`, "choose debug, info, warn or error"}},
		{"slot not a number", gen("--slot", "one"), 2, []string{"invalid value \"one\" for flag -slot", help}},
		{"two token selectors", append(gen(), "--token-serial", "123"), 2, []string{"exactly one of --token-label, --token-serial or --slot"}},
		{"no token chosen", []string{"import", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--key-label", "new", "--generate", "--no-expiry"}, 2, []string{"give exactly one of --token-label, --token-serial or --slot"}},

		// Which HSM key.
		{"generate without label", imp("--generate", "--no-expiry"), 2, []string{"--generate needs --key-label"}},
		{"generate with hsm-key-id", imp("--key-label", "new", "--generate", "--hsm-key-id", "01", "--no-expiry"), 2, []string{"drop --hsm-key-id"}},
		{"no key chosen", imp("--no-expiry"), 2, []string{"no HSM key chosen", "--generate"}},
		{"label and id", imp("--key-label", "existing", "--hsm-key-id", "01", "--no-expiry"), 2, []string{"either --key-label or --hsm-key-id"}},
		{"hsm-key-id not hex", imp("--hsm-key-id", "xyz", "--no-expiry"), 2, []string{`--hsm-key-id "xyz" is not hex`, "hex digits"}},
		{"label exists with generate", imp("--key-label", "existing", "--generate", "--no-expiry"), 3, []string{`already has an object labelled "existing"`, "drop --generate"}},
		{"label missing without generate", imp("--key-label", "nosuch", "--no-expiry"), 3, []string{`label "nosuch"`, "--generate"}},
		{"hsm-key-id missing", imp("--hsm-key-id", "0badc0de", "--no-expiry"), 3, []string{"0badc0de", "--generate"}},

		{"key readable in the clear", imp("--key-label", "clear", "--no-expiry"), 3, []string{"CKA_SENSITIVE=false", "--allow-non-sensitive"}},
		{"key not extractable", imp("--key-label", "stuck", "--no-expiry"), 3, []string{"CKA_EXTRACTABLE=false", "--generate"}},

		// Key labels that would not fit a tag or would forge a log line.
		{"label with newline", imp("--key-label", "k\nlevel=ERROR msg=forged", "--generate", "--no-expiry"), 2, []string{"--key-label", "control character", "printable"}},
		{"label with escape", imp("--key-label", "k\x1b[31m", "--generate", "--no-expiry"), 2, []string{"--key-label", "control character"}},
		{"label with tab", imp("--key-label", "k\tl", "--generate", "--no-expiry"), 2, []string{"--key-label", "control character"}},
		{"label too long for a tag", imp("--key-label", long(257), "--generate", "--no-expiry"), 2, []string{"--key-label", "kmsbridge:hsm-key-label tag", "at most 256"}},
		{"label with star", imp("--key-label", "k*", "--generate", "--no-expiry"), 2, []string{"--key-label", "character KMS does not allow", "use letters"}},

		// Tags: KMS's rules, checked before the HSM key is made.
		{"tag without equals", gen("--tag", "team"), 2, []string{`--tag "team"`, "KEY=VALUE"}},
		{"tag empty key", gen("--tag", "=v"), 2, []string{`--tag "=v"`, "KEY=VALUE"}},
		{"tag key too long", gen("--tag", long(129)+"=v"), 2, []string{"--tag", "129 characters; KMS allows at most 128", "1 to 128"}},
		{"tag value too long", gen("--tag", "k="+long(257)), 2, []string{"--tag \"k\"", "257 characters", "at most 256"}},
		{"tag aws prefix", gen("--tag", "aws:owner=me"), 2, []string{`--tag "aws:owner"`, "reserved for AWS", "without the aws: prefix"}},
		{"tag AWS prefix", gen("--tag", "AWS:owner=me"), 2, []string{"reserved for AWS"}},
		{"tag kmsbridge prefix", gen("--tag", "kmsbridge:hsm-key-id=01"), 2, []string{"set by kmsbridge itself", "without the kmsbridge: prefix"}},
		{"tag duplicate key", gen("--tag", "team=a", "--tag", "team=b"), 2, []string{`--tag "team"`, "given twice", "once"}},
		{"too many tags", gen(manyTags...), 2, []string{"47 tags given", "kmsbridge adds 5 tags of its own", "at most 45"}},
		{"tag key with star", gen("--tag", "a*b=v"), 2, []string{"character KMS does not allow", "use letters"}},
		{"tag value with newline", gen("--tag", "k=a\nb"), 2, []string{"character KMS does not allow"}},
		{"tag huge value excerpted", gen("--tag", "k="+long(100000)), 2, []string{"100000 characters", "at most 256"}},

		// Alias and description.
		{"alias without prefix", gen("--alias", "payments"), 2, []string{`--alias "payments"`, "must start with alias/"}},
		{"alias aws reserved", gen("--alias", "alias/aws/s3"), 2, []string{"reserved for AWS managed keys", "outside alias/aws/"}},
		{"alias too long", gen("--alias", "alias/"+long(251)), 2, []string{"--alias", "257 characters; KMS allows at most 256"}},
		{"alias with space", gen("--alias", "alias/a b"), 2, []string{"not a KMS alias name", "letters, digits"}},
		{"alias bare prefix", gen("--alias", "alias/"), 2, []string{"not a KMS alias name"}},
		{"alias in use", gen("--alias", "alias/taken-by-nobody", "--kms-key-id", c.awsKeyID), 2, []string{"origin AWS_KMS, not EXTERNAL"}},
		{"description too long", gen("--description", long(8193)), 2, []string{"--description", "8193 characters; KMS allows at most 8192", "shorten"}},

		// Key spec, usage and wrapping.
		{"unknown key spec", gen("--key-spec", "AES_512"), 2, []string{`unknown key spec "AES_512"`, "choose one of"}},
		{"key spec SM2", gen("--key-spec", "SM2"), 2, []string{"SM2", "China"}},
		{"usage not for spec", gen("--key-spec", "HMAC_256", "--key-usage", "ENCRYPT_DECRYPT"), 2, []string{"--key-usage ENCRYPT_DECRYPT is not allowed for HMAC_256", "GENERATE_VERIFY_MAC"}},
		{"unknown wrapping algorithm", gen("--wrapping-algorithm", "RSA_OAEP"), 2, []string{`unknown wrapping algorithm "RSA_OAEP"`, "choose one of"}},
		{"pkcs1 v1.5", gen("--wrapping-algorithm", "RSAES_PKCS1_V1_5"), 2, []string{"RSAES_PKCS1_V1_5 is refused", "use one of"}},
		{"sm2pke", gen("--wrapping-algorithm", "SM2PKE"), 2, []string{"SM2PKE", "use one of"}},
		{"unknown wrapping key spec", gen("--wrapping-key-spec", "RSA_1024"), 2, []string{`unknown wrapping key spec "RSA_1024"`, "RSA_4096"}},
		{"rsa material under oaep alone", gen("--key-spec", "RSA_2048", "--key-usage", "SIGN_VERIFY", "--wrapping-algorithm", "RSAES_OAEP_SHA_1"), 2, []string{"too large for RSA-OAEP alone", "RSA_AES_KEY_WRAP"}},
		{"sha-256 on softhsm", gen("--wrapping-algorithm", "RSAES_OAEP_SHA_256"), 2, []string{"cannot wrap with RSA-OAEP SHA-256", "RSAES_OAEP_SHA_1"}},

		// Expiry.
		{"both expiries", gen("--valid-to", validTo(time.Hour)), 2, []string{"both --valid-to and --no-expiry"}},
		{"no expiry", imp("--key-label", "new", "--generate"), 2, []string{"no expiry chosen", "--no-expiry"}},
		{"valid-to in the past", imp("--key-label", "new", "--generate", "--valid-to", "2020-01-01T00:00:00Z"), 2, []string{"is in the past"}},
		{"valid-to beyond 365 days", imp("--key-label", "new", "--generate", "--valid-to", validTo(400*24*time.Hour)), 2, []string{"more than 365 days ahead"}},
		{"valid-to not a time", imp("--key-label", "new", "--generate", "--valid-to", "next tuesday"), 2, []string{"is not a time", "RFC 3339"}},

		// The token and its PIN.
		{"wrong PIN", env("KMSBRIDGE_PIN=0000", gen()), 3, []string{"CKR_PIN_INCORRECT", "the PIN is wrong"}},
		{"empty PIN", env("KMSBRIDGE_PIN=", gen()), 3, []string{"KMSBRIDGE_PIN is set but empty"}},
		{"unknown token", []string{"import", "--token-label", "nosuch", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--key-label", "new", "--generate", "--no-expiry"}, 3, []string{`no token with label "nosuch"`, `label "ceremony"`}},
		{"unknown module", env("KMSBRIDGE_PKCS11_MODULE=/usr/lib/nosuch/libpkcs11.so", gen()), 3, []string{"/usr/lib/nosuch/libpkcs11.so does not exist", "--module"}},
		{"module not a library", gen("--module", c.path("plain.txt")), 3, []string{"plain.txt", "could not be loaded as a PKCS#11 library", "vendor's PKCS#11 module"}},
		{"pin file missing", gen("--pin-file", c.path("nosuch-pin")), 2, []string{"--pin-file", "no such file", "check the path"}},
		{"pin file world readable", gen("--pin-file", c.path("pin-world.txt")), 2, []string{"--pin-file", "mode 0644", "chmod 600"}},
		{"pin file group readable", gen("--pin-file", c.path("pin-group.txt")), 2, []string{"--pin-file", "mode 0640", "chmod 600"}},
		{"pin file empty", gen("--pin-file", c.path("pin-empty.txt")), 2, []string{"--pin-file", "is empty", "write the PIN"}},
		{"pin file two lines", gen("--pin-file", c.path("pin-lines.txt")), 2, []string{"--pin-file", "more than one line"}},
		{"pin file directory", gen("--pin-file", c.path("subdir")), 2, []string{"--pin-file", "is a directory, not a regular file"}},
		{"pin file fifo", gen("--pin-file", c.path("fifo")), 2, []string{"--pin-file", "FIFO", "not a regular file"}},
		{"pin file dev zero", gen("--pin-file", c.path("zero")), 2, []string{"--pin-file", "character device"}},
		{"pin file too large", gen("--pin-file", c.path("big.bin")), 2, []string{"--pin-file", "larger than 4 KiB"}},

		// KMS.
		{"kms key not external", gen("--kms-key-id", c.awsKeyID), 2, []string{"origin AWS_KMS, not EXTERNAL"}},
		{"unknown kms key", imp("--key-label", "existing", "--no-expiry", "--kms-key-id", "11111111-2222-3333-4444-555555555555"), 4, []string{"NotFoundException", "check --kms-key-id"}},
		{"new key into a linked kms key", gen("--kms-key-id", c.existing.KeyId), 2, []string{"already holds material from HSM key CKA_ID " + c.existing.HSM.KeyID}},
		{"endpoint not a url", imp("--key-label", "new", "--generate", "--no-expiry", "--endpoint-url", "not a url"), 2, []string{`--endpoint-url "not a url" is not an endpoint URL`, "http(s)://HOST"}},
		{"endpoint without scheme", imp("--key-label", "new", "--generate", "--no-expiry", "--endpoint-url", "127.0.0.1:4566"), 2, []string{"is not an endpoint URL"}},
		{"endpoint ftp", imp("--key-label", "new", "--generate", "--no-expiry", "--endpoint-url", "ftp://127.0.0.1/"), 2, []string{"is not an endpoint URL"}},
		{"endpoint not kms", imp("--key-label", "new", "--generate", "--no-expiry", "--endpoint-url", c.notKMS, "--allow-endpoint", c.notKMS), 4, []string{"does not speak the KMS API", "check --endpoint-url"}},
		{"endpoint not confirmed", []string{"import", "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--key-label", "new", "--generate", "--no-expiry"}, 2,
			[]string{"KMS endpoint " + c.emu.URL + " refused", "--endpoint-url " + c.emu.URL + " --allow-endpoint " + c.emu.URL}},
		{"endpoint confirmed differently", imp("--key-label", "new", "--generate", "--no-expiry", "--allow-endpoint", "http://127.0.0.1:9"), 2, []string{"--allow-endpoint http://127.0.0.1:9 does not match --endpoint-url " + c.emu.URL}},
		{"allow-endpoint alone", []string{"import", "--token-label", c.tok.Label, "--allow-endpoint", c.emu.URL, "--key-label", "new", "--generate", "--no-expiry"}, 2, []string{"--allow-endpoint confirms the endpoint named with --endpoint-url"}},
		{"endpoint http off loopback", imp("--key-label", "new", "--generate", "--no-expiry", "--endpoint-url", "http://192.0.2.1:4566", "--allow-endpoint", "http://192.0.2.1:4566"), 2, []string{"plain http is allowed only to a loopback address"}},
		{"endpoint of another region", []string{"import", "--token-label", c.tok.Label, "--endpoint-url", "https://kms.eu-west-1.amazonaws.com", "--key-label", "new", "--generate", "--no-expiry"}, 2, []string{"not an endpoint AWS serves for Region us-east-1"}},
		{"endpoint from the environment", env("AWS_ENDPOINT_URL_KMS=http://127.0.0.1:9", gen()), 2, []string{"the environment (AWS_ENDPOINT_URL_KMS)", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true"}},
		{"ca-bundle missing", gen("--ca-bundle", c.path("nosuch.pem")), 2, []string{"--ca-bundle", "no such file"}},
		{"ca-bundle not pem", gen("--ca-bundle", c.goodPIN), 2, []string{"holds no PEM certificate"}},
		{"unknown profile", gen("--profile", "nosuch"), 2, []string{`AWS profile "nosuch"`, "check --profile"}},
		{"no region", env("AWS_REGION=", gen()), 2, []string{"no AWS region", "--region"}},

		// The record.
		{"record dir missing", gen("--record", c.path("nodir/rec.jsonl")), 2, []string{"--record", "does not exist", "mkdir -p"}},
		{"record is a directory", gen("--record", c.path("subdir")), 2, []string{"--record", "is a directory, not a regular file"}},
		{"record is a fifo", gen("--record", c.path("fifo")), 2, []string{"--record", "FIFO"}},
		{"record is dev zero", gen("--record", c.path("zero")), 2, []string{"--record", "character device"}},
		{"audit key without record", gen("--audit-key", "audit"), 2, []string{"--audit-key signs the ceremony record", "--record FILE"}},
		{"audit key unknown", gen("--record", c.record, "--audit-key", "nosuch-audit"), 3, []string{`--audit-key "nosuch-audit"`, "kmsbridge audit-key create"}},
		{"audit key is a data key", gen("--record", c.record, "--audit-key", "existing"), 3, []string{"existing", "audit"}},
	}
	c.run(t, cases)
}
