package ceremony

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// now is the ceremony day every test validates against.
var now = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// header and twoKeys make a valid file; the numbers are its line numbers,
// which the tests' expected messages name.
const header = `hsm:
  module: /usr/lib/softhsm/libsofthsm2.so
  token:
    label: ceremony
  pin-source:
    env: KMSBRIDGE_PIN
kms:
  region: eu-west-1
record: record.json
operators: [alice, bob]
dual-control:
  wrap-with-trusted: false
`

//  1 hsm:
//  2   module:
//  3   token:
//  4     label:
//  5   pin-source:
//  6     env:
//  7 kms:
//  8   region:
//  9 record:
// 10 operators:
// 11 dual-control:
// 12   wrap-with-trusted:
// 13 keys:
// 14   - hsm-label: aes-2026
// ...
// 22   - hsm-label: mac-2026

const twoKeys = `keys:
  - hsm-label: aes-2026
    generate: true
    key-spec: SYMMETRIC_DEFAULT
    key-usage: ENCRYPT_DECRYPT
    alias: alias/aes-2026
    wrapping-algorithm: RSAES_OAEP_SHA_256
    wrapping-key-spec: RSA_4096
    valid-to: 2026-12-31
  - hsm-label: mac-2026
    generate: true
    key-spec: HMAC_256
    key-usage: GENERATE_VERIFY_MAC
    alias: alias/mac-2026
    wrapping-algorithm: RSA_AES_KEY_WRAP_SHA_256
    wrapping-key-spec: RSA_4096
    no-expiry: true
`

const base = header + twoKeys

// load writes content to ceremony.yaml in a temporary directory and loads
// it, returning the error text with the directory taken out.
func load(t *testing.T, content string) (*File, error, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "ceremony.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path, now)
	if err == nil {
		return f, nil, ""
	}
	return f, err, strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "")
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		// yaml is the file; base when empty.
		yaml string
		// edits replace the first occurrence of each [0] with [1].
		edits [][2]string
		// want are substrings of the error, in the order the error lists
		// them; none means the file must load.
		want []string
		// count is how many problems the error lists.
		count int
		// never are substrings the error must not contain (secrets).
		never []string
	}{
		{name: "ok two keys"},
		{name: "ok token by slot 0", edits: [][2]string{{"    label: ceremony\n", "    slot: 0\n"}}},
		{name: "ok token by serial", edits: [][2]string{{"    label: ceremony\n", "    serial: \"8d3e2a7b\"\n"}}},
		{name: "ok token by PKCS#11 URI", edits: [][2]string{{"    label: ceremony\n", "    uri: \"pkcs11:token=ceremony;serial=8d3e2a7b\"\n"}}},
		{name: "ok module from the token URI", edits: [][2]string{
			{"  module: /usr/lib/softhsm/libsofthsm2.so\n", ""},
			{"    label: ceremony\n", "    uri: \"pkcs11:token=ceremony?module-path=/usr/lib/softhsm/libsofthsm2.so\"\n"},
		}},
		{name: "fail token URI with a PIN", edits: [][2]string{{"    label: ceremony\n", "    uri: \"pkcs11:token=ceremony?pin-value=2468\"\n"}}, want: []string{"hsm.token.uri", "pin-value puts the PIN"}, count: 1, never: []string{"2468"}},
		{name: "fail token URI and label", edits: [][2]string{{"    label: ceremony\n", "    label: ceremony\n    uri: \"pkcs11:token=ceremony\"\n"}}, want: []string{"hsm.token", "choose the token one way"}, count: 1},
		{name: "fail token URI naming a key", edits: [][2]string{{"    label: ceremony\n", "    uri: \"pkcs11:token=ceremony;object=k\"\n"}}, want: []string{"hsm.token.uri", "names only the token"}, count: 1},
		{name: "ok pin from file", edits: [][2]string{{"    env: KMSBRIDGE_PIN\n", "    file: /run/ceremony/pin\n"}}},
		{name: "ok pin from prompt, explicit false elsewhere", edits: [][2]string{{"    env: KMSBRIDGE_PIN\n", "    prompt: true\n"}}},
		{name: "ok audit key, endpoint and profile", edits: [][2]string{
			{"record: record.json\n", "record: record.json\naudit-key:\n  label: audit\n"},
			{"  region: eu-west-1\n", "  region: eu-west-1\n  endpoint: http://127.0.0.1:4599\n  allow-endpoint: http://127.0.0.1:4599\n  ca-bundle: /etc/ceremony/ca.pem\n  profile: ceremony\n"},
		}},
		{name: "ok lower-case names and RFC 3339 valid-to", edits: [][2]string{
			{"SYMMETRIC_DEFAULT", "symmetric_default"},
			{"valid-to: 2026-12-31", "valid-to: 2026-12-31T12:00:00+02:00"},
		}},
		{name: "ok existing HSM key into existing KMS key", edits: [][2]string{
			{"    generate: true\n", "    generate: false\n"},
			{"    valid-to: 2026-12-31\n", "    valid-to: 2026-12-31\n    kms-key-id: 1234abcd-12ab-34cd-56ef-1234567890ab\n"},
		}},

		// Strict parsing.
		{
			name:  "fail unknown field names field and line",
			edits: [][2]string{{"  region: eu-west-1\n", "  region: eu-west-1\n  regoin: eu-west-2\n"}},
			want:  []string{`ceremony.yaml:9: kms.regoin: unknown field "regoin": kms takes only region, endpoint, allow-endpoint, ca-bundle, profile`},
			count: 1,
		},
		{
			name:  "fail misspelt key field is unknown and the real one missing",
			edits: [][2]string{{"    alias: alias/aes-2026\n", "    alais: alias/aes-2026\n"}},
			want: []string{
				`ceremony.yaml:14: keys[0].alias is required`,
				`ceremony.yaml:18: keys[0].alais: unknown field "alais": each entry of keys takes only hsm-label, generate,`,
			},
			count: 2,
		},
		{
			name:  "fail top-level wrap-with-trusted belongs under dual-control",
			edits: [][2]string{{"dual-control:\n  wrap-with-trusted: false\n", "wrap-with-trusted: false\n"}},
			want: []string{
				`ceremony.yaml:11: wrap-with-trusted: unknown field "wrap-with-trusted": the top level takes only hsm, kms, record, audit-key, operators, dual-control, keys`,
				"\n\tceremony.yaml: dual-control.wrap-with-trusted is required",
			},
			count: 2,
		},
		{
			name:  "fail bool written as yes",
			edits: [][2]string{{"    generate: true\n", "    generate: yes\n"}},
			want:  []string{`ceremony.yaml:15: keys[0].generate must be true or false, not a string`},
			count: 1,
		},
		{
			name:  "fail list written as one value",
			edits: [][2]string{{"operators: [alice, bob]", "operators: alice"}},
			want:  []string{`ceremony.yaml:10: operators must be a list, not a string`},
			count: 1,
		},
		{
			name:  "fail negative slot",
			edits: [][2]string{{"    label: ceremony\n", "    slot: -1\n"}},
			want:  []string{`ceremony.yaml:4: hsm.token.slot must be a whole number, 0 or more, not a number`},
			count: 1,
		},
		{
			name:  "fail field given twice",
			edits: [][2]string{{"    alias: alias/aes-2026\n", "    alias: alias/aes-2026\n    alias: alias/aes-2027\n"}},
			want:  []string{`ceremony.yaml:19: keys[0].alias is given twice (first on line 18): keep one`},
			count: 1,
		},
		{
			name:  "fail yaml alias",
			edits: [][2]string{{"    wrapping-key-spec: RSA_4096\n    valid-to", "    wrapping-key-spec: &wks RSA_4096\n    valid-to"}, {"    wrapping-key-spec: RSA_4096\n    no-expiry", "    wrapping-key-spec: *wks\n    no-expiry"}},
			want:  []string{`ceremony.yaml:28: keys[1].wrapping-key-spec: YAML aliases (*wks) are not allowed`},
			count: 1,
		},
		{
			name:  "fail list entry of the wrong kind, later entries not misnamed",
			edits: [][2]string{{"keys:\n", "keys:\n  - aes-2025\n"}, {"alias: alias/mac-2026", "alias: alias/aes-2026"}},
			want:  []string{`ceremony.yaml:14: keys[0] must be a mapping of fields (hsm-label, generate,`},
			count: 1,
		},
		{
			name:  "fail yaml merge key",
			edits: [][2]string{{"  - hsm-label: mac-2026\n", "  - <<: {generate: true}\n    hsm-label: mac-2026\n"}},
			want:  []string{`ceremony.yaml:22: keys[1].<<: YAML merge keys (<<) are not allowed`},
			count: 1,
		},
		{
			name:  "fail not YAML",
			yaml:  "hsm:\n  module: [\n",
			want:  []string{`ceremony.yaml:2: not valid YAML: `},
			count: 1,
		},
		{
			name:  "fail two documents",
			yaml:  base + "---\nkeys: []\n",
			want:  []string{`ceremony.yaml:30: a second YAML document`},
			count: 1,
		},
		{
			name:  "fail empty file",
			yaml:  "# nothing yet\n",
			want:  []string{`ceremony.yaml: the file is empty`},
			count: 1,
		},

		// PINs.
		{
			name:  "fail pin in file",
			edits: [][2]string{{"  pin-source:\n", "  pin: \"123456\"\n  pin-source:\n"}},
			want:  []string{`ceremony.yaml:5: hsm.pin: PINs never go in the ceremony file, which is shared, reviewed and kept: remove pin and set hsm.pin-source to env: VARIABLE, file: PATH or prompt: true`},
			count: 1,
			never: []string{"123456"},
		},
		{
			name:  "fail pin anywhere, in any case",
			edits: [][2]string{{"    env: KMSBRIDGE_PIN\n", "    env: KMSBRIDGE_PIN\n    PIN: 987654\n"}, {"kms:\n", "kms:\n  user_pin: 555111\n"}},
			want:  []string{`ceremony.yaml:7: hsm.pin-source.PIN: PINs never go`, `ceremony.yaml:9: kms.user_pin: PINs never go`},
			count: 2,
			never: []string{"987654", "555111"},
		},
		{
			name:  "fail pin as a tag",
			edits: [][2]string{{"    alias: alias/mac-2026\n", "    alias: alias/mac-2026\n    tags:\n      pin: \"0000\"\n"}},
			want:  []string{`ceremony.yaml:28: keys[1].tags.pin: PINs and passwords never go in the ceremony file`},
			count: 1,
		},
		{
			name:  "fail pin written as pin-source",
			edits: [][2]string{{"  pin-source:\n    env: KMSBRIDGE_PIN\n", "  pin-source: 24681357\n"}},
			want:  []string{`ceremony.yaml:5: hsm.pin-source must be a mapping of fields (env, file, prompt), not a number`},
			count: 1,
			never: []string{"24681357"},
		},
		{
			name:  "fail pin written as env",
			edits: [][2]string{{"    env: KMSBRIDGE_PIN\n", "    env: 1357-2468\n"}},
			want:  []string{`ceremony.yaml:6: hsm.pin-source.env must be the name of an environment variable`},
			count: 1,
			never: []string{"1357-2468"},
		},
		{
			name:  "fail two pin sources",
			edits: [][2]string{{"    env: KMSBRIDGE_PIN\n", "    env: KMSBRIDGE_PIN\n    prompt: true\n"}},
			want:  []string{`ceremony.yaml:5: hsm.pin-source must have exactly one of env, file and prompt, not several: choose one`},
			count: 1,
		},
		{
			name:  "fail no pin source",
			edits: [][2]string{{"  pin-source:\n    env: KMSBRIDGE_PIN\n", ""}},
			want:  []string{`ceremony.yaml:1: hsm.pin-source is required`},
			count: 1,
		},

		// Required fields.
		{
			name: "fail missing required fields",
			yaml: "keys:\n  - hsm-label: only-a-label\n",
			want: []string{
				"ceremony.yaml:2: keys[0].generate is required",
				"ceremony.yaml:2: keys[0].key-spec is required: the KMS key spec, one of SYMMETRIC_DEFAULT, HMAC_224,",
				"ceremony.yaml:2: keys[0].key-usage is required",
				"ceremony.yaml:2: keys[0].alias is required",
				"ceremony.yaml:2: keys[0].wrapping-algorithm is required",
				"ceremony.yaml:2: keys[0].wrapping-key-spec is required",
				"ceremony.yaml:2: keys[0]: no expiry chosen: give valid-to TIME",
				"ceremony.yaml: hsm.module is required: the absolute path of the HSM vendor's PKCS#11 library",
				"ceremony.yaml: hsm.token: no token chosen: give exactly one of label, serial or slot",
				"ceremony.yaml: hsm.pin-source is required",
				"ceremony.yaml: kms.region is required",
				"ceremony.yaml: record is required",
				"ceremony.yaml: operators is required",
				"ceremony.yaml: dual-control.wrap-with-trusted is required",
			},
			count: 14,
		},
		{
			name:  "fail key-usage missing names the spec's usages",
			edits: [][2]string{{"    key-usage: GENERATE_VERIFY_MAC\n", ""}},
			want:  []string{`ceremony.yaml:22: keys[1].key-usage is required: for HMAC_256 write GENERATE_VERIFY_MAC`},
			count: 1,
		},
		{
			name:  "fail wrapping-algorithm missing names those KMS accepts",
			edits: [][2]string{{"    wrapping-algorithm: RSAES_OAEP_SHA_256\n", ""}},
			want:  []string{`keys[0].wrapping-algorithm is required: for SYMMETRIC_DEFAULT under an RSA_4096 wrapping key KMS accepts RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_256, RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_1`},
			count: 1,
		},
		{
			name:  "fail empty keys list",
			yaml:  header + "keys: []\n",
			want:  []string{`ceremony.yaml:13: keys is required: list at least one key to import`},
			count: 1,
		},
		{
			name:  "fail no keys section",
			yaml:  header,
			want:  []string{`ceremony.yaml: keys is required`},
			count: 1,
		},
		{
			name:  "fail audit key without label",
			edits: [][2]string{{"record: record.json\n", "record: record.json\naudit-key: {}\n"}},
			want:  []string{`ceremony.yaml:10: audit-key.label is required when audit-key is given`},
			count: 1,
		},

		// Sections.
		{
			name:  "fail two token selectors",
			edits: [][2]string{{"    label: ceremony\n", "    label: ceremony\n    serial: \"8d3e2a7b\"\n"}},
			want:  []string{`ceremony.yaml:3: hsm.token: more than one way of choosing the token: give exactly one of label, serial or slot`},
			count: 1,
		},
		{
			name:  "fail relative module path",
			edits: [][2]string{{"/usr/lib/softhsm/libsofthsm2.so", "libsofthsm2.so"}},
			want:  []string{`ceremony.yaml:2: hsm.module must be an absolute path (it is "libsofthsm2.so")`},
			count: 1,
		},
		{
			name:  "fail region not a region",
			edits: [][2]string{{"region: eu-west-1", "region: Ireland"}},
			want:  []string{`ceremony.yaml:8: kms.region: "Ireland" is not an AWS Region`},
			count: 1,
		},
		{
			name:  "fail region in upper case",
			edits: [][2]string{{"region: eu-west-1", "region: EU-WEST-1"}},
			want:  []string{`ceremony.yaml:8: kms.region: "EU-WEST-1": AWS Region names are lower case: write eu-west-1`},
			count: 1,
		},
		{
			name:  "fail region of the right shape that AWS does not have",
			edits: [][2]string{{"region: eu-west-1", "region: eu-west-9"}},
			want:  []string{`ceremony.yaml:8: kms.region: "eu-west-9" is not an AWS Region; did you mean eu-west-1`},
			count: 1,
		},
		{
			name:  "fail allow-endpoint without endpoint",
			edits: [][2]string{{"  region: eu-west-1\n", "  region: eu-west-1\n  allow-endpoint: http://127.0.0.1:4599\n"}},
			want:  []string{`kms.allow-endpoint must repeat the endpoint named in kms.endpoint`},
			count: 1,
		},
		{
			name:  "fail allow-endpoint not the endpoint",
			edits: [][2]string{{"  region: eu-west-1\n", "  region: eu-west-1\n  endpoint: http://127.0.0.1:4599\n  allow-endpoint: http://127.0.0.1:4598\n"}},
			want:  []string{`kms.allow-endpoint: "http://127.0.0.1:4598" does not match kms.endpoint "http://127.0.0.1:4599"`},
			count: 1,
		},
		{
			name:  "fail endpoint with credentials",
			edits: [][2]string{{"  region: eu-west-1\n", "  region: eu-west-1\n  endpoint: https://AKIAXXXX:hunter2@kms.example\n"}},
			want:  []string{`ceremony.yaml:9: kms.endpoint must not carry credentials`},
			count: 1,
			never: []string{"hunter2"},
		},
		{
			name:  "fail operators empty and repeated",
			edits: [][2]string{{"operators: [alice, bob]", "operators: [alice, \"\", alice]"}},
			want:  []string{`ceremony.yaml:10: operators[1] is empty`, `ceremony.yaml:10: operators[2]: "alice" is also operators[0]`},
			count: 2,
		},
		{
			name:  "fail audit key is a key being imported",
			edits: [][2]string{{"record: record.json\n", "record: record.json\naudit-key:\n  label: mac-2026\n"}},
			want:  []string{`ceremony.yaml:11: audit-key.label: "mac-2026" is also keys[1].hsm-label`},
			count: 1,
		},

		// Key specs, usages, wrapping: kmsimport's rules.
		{
			name:  "fail bad key spec",
			edits: [][2]string{{"SYMMETRIC_DEFAULT", "AES_256"}},
			want:  []string{`ceremony.yaml:16: keys[0].key-spec: unknown key spec "AES_256": choose one of SYMMETRIC_DEFAULT,`},
			count: 1,
		},
		{
			name:  "fail SM2 key spec",
			edits: [][2]string{{"SYMMETRIC_DEFAULT", "SM2"}},
			want:  []string{`keys[0].key-spec: key spec SM2 is offered only in AWS China Regions`},
			count: 1,
		},
		{
			name:  "fail usage the spec does not allow",
			edits: [][2]string{{"GENERATE_VERIFY_MAC", "ENCRYPT_DECRYPT"}},
			want:  []string{`ceremony.yaml:25: keys[1].key-usage: key-usage ENCRYPT_DECRYPT is not allowed for HMAC_256: KMS allows GENERATE_VERIFY_MAC`},
			count: 1,
		},
		{
			name:  "fail invalid wrapping for the spec",
			edits: [][2]string{{"SYMMETRIC_DEFAULT", "RSA_2048"}},
			want:  []string{`ceremony.yaml:19: keys[0].wrapping-algorithm: RSA_2048 material (a PKCS#8 RSA private key) is too large for RSA-OAEP alone, so KMS requires RSA-AES key wrap: use wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1`},
			count: 1,
		},
		{
			name: "fail P-521 too large for OAEP under RSA_2048",
			edits: [][2]string{
				{"SYMMETRIC_DEFAULT", "ECC_NIST_P521"}, {"ENCRYPT_DECRYPT", "SIGN_VERIFY"},
				{"    wrapping-key-spec: RSA_4096\n    valid-to", "    wrapping-key-spec: RSA_2048\n    valid-to"},
			},
			want:  []string{`ceremony.yaml:19: keys[0].wrapping-algorithm: ECC_NIST_P521 material (up to 241 bytes of PKCS#8) does not fit RSAES_OAEP_SHA_256 under an RSA_2048 wrapping key`},
			count: 1,
		},
		{
			name:  "fail PKCS#1 v1.5 wrapping",
			edits: [][2]string{{"RSAES_OAEP_SHA_256", "RSAES_PKCS1_V1_5"}},
			want:  []string{`ceremony.yaml:19: keys[0].wrapping-algorithm: wrapping algorithm RSAES_PKCS1_V1_5 is refused`},
			count: 1,
		},
		{
			name:  "fail bad wrapping key spec",
			edits: [][2]string{{"    wrapping-key-spec: RSA_4096\n    valid-to", "    wrapping-key-spec: RSA_1024\n    valid-to"}},
			want:  []string{`ceremony.yaml:20: keys[0].wrapping-key-spec: unknown wrapping key spec "RSA_1024"`},
			count: 1,
		},
		{
			name:  "fail alias not an alias",
			edits: [][2]string{{"alias: alias/aes-2026", "alias: aes-2026"}},
			want:  []string{`ceremony.yaml:18: keys[0].alias: this is not a KMS alias name; it must start with alias/`},
			count: 1,
		},
		{
			name:  "fail reserved tags",
			edits: [][2]string{{"    alias: alias/mac-2026\n", "    alias: alias/mac-2026\n    tags:\n      kmsbridge:hsm-key-id: \"01\"\n      aws:owner: me\n"}},
			want: []string{
				`ceremony.yaml:28: keys[1].tags.kmsbridge:hsm-key-id: tag keys beginning kmsbridge: are set by kmsbridge itself; choose a key without`,
				`ceremony.yaml:29: keys[1].tags.aws:owner: tag keys beginning aws: are reserved for AWS; choose a key without`,
			},
			count: 2,
		},

		// Expiry: kmsimport's rules, with the ceremony day as now.
		{
			name:  "fail both valid-to and no-expiry",
			edits: [][2]string{{"    valid-to: 2026-12-31\n", "    valid-to: 2026-12-31\n    no-expiry: true\n"}},
			want:  []string{`ceremony.yaml:14: keys[0]: both valid-to and no-expiry given: choose one`},
			count: 1,
		},
		{
			name:  "fail neither valid-to nor no-expiry",
			edits: [][2]string{{"    no-expiry: true\n", ""}},
			want:  []string{`ceremony.yaml:22: keys[1]: no expiry chosen: give valid-to TIME (RFC 3339, e.g. `, `or no-expiry for material that does not`},
			count: 1,
		},
		{
			name:  "fail valid-to in the past",
			edits: [][2]string{{"2026-12-31", "2026-05-31"}},
			want:  []string{`ceremony.yaml:21: keys[0].valid-to: valid-to 2026-05-31T00:00:00Z is in the past`},
			count: 1,
		},
		{
			name:  "fail valid-to more than 365 days ahead",
			edits: [][2]string{{"2026-12-31", "2027-06-02"}},
			want:  []string{`ceremony.yaml:21: keys[0].valid-to: valid-to 2027-06-02T00:00:00Z is more than 365 days ahead: KMS accepts at most 2027-06-01T09:00:00Z`},
			count: 1,
		},
		{
			name:  "fail valid-to not a time",
			edits: [][2]string{{"2026-12-31", "31/12/2026"}},
			want:  []string{`ceremony.yaml:21: keys[0].valid-to: "31/12/2026" is not a time: write RFC 3339 like 2027-06-30T00:00:00Z, or a date like 2027-06-30`},
			count: 1,
		},

		// Uniqueness across keys.
		{
			name:  "fail duplicate labels",
			edits: [][2]string{{"hsm-label: mac-2026", "hsm-label: aes-2026"}},
			want:  []string{`ceremony.yaml:22: keys[1].hsm-label: "aes-2026" is also keys[0].hsm-label: each key needs its own HSM key`},
			count: 1,
		},
		{
			name:  "fail duplicate aliases",
			edits: [][2]string{{"alias: alias/mac-2026", "alias: alias/aes-2026"}},
			want:  []string{`ceremony.yaml:26: keys[1].alias: "alias/aes-2026" is also keys[0].alias: an alias points to one KMS key`},
			count: 1,
		},
		{
			name: "fail duplicate KMS key IDs",
			edits: [][2]string{
				{"    valid-to: 2026-12-31\n", "    valid-to: 2026-12-31\n    kms-key-id: 1234abcd\n"},
				{"    no-expiry: true\n", "    no-expiry: true\n    kms-key-id: 1234abcd\n"},
			},
			want:  []string{`ceremony.yaml:31: keys[1].kms-key-id: "1234abcd" is also keys[0].kms-key-id`},
			count: 1,
		},

		{
			name: "fail duplicate rotate-to labels",
			edits: [][2]string{
				{"    valid-to: 2026-12-31\n", "    valid-to: 2026-12-31\n    rotate-to: next-2027\n"},
				{"    no-expiry: true\n", "    no-expiry: true\n    rotate-to: next-2027\n"},
				{"generate: true\n    key-spec: SYMMETRIC", "generate: false\n    key-spec: SYMMETRIC"},
				{"generate: true\n    key-spec: HMAC", "generate: false\n    key-spec: HMAC"},
			},
			want:  []string{`keys[1].rotate-to: "next-2027" is also keys[0].rotate-to: each HSM key label names one key of the token`},
			count: 1,
		},
		{
			name: "fail rotate-to the label of another key",
			edits: [][2]string{
				{"    no-expiry: true\n", "    no-expiry: true\n    rotate-to: aes-2026\n"},
				{"generate: true\n    key-spec: HMAC", "generate: false\n    key-spec: HMAC"},
			},
			want:  []string{`keys[1].rotate-to: "aes-2026" is also keys[0].hsm-label`},
			count: 1,
		},

		// Everything at once.
		{
			name: "fail several errors at once all reported in file order",
			edits: [][2]string{
				{"  region: eu-west-1\n", ""},
				{"  pin-source:\n", "  pin: \"4321\"\n  pin-source:\n"},
				{"SYMMETRIC_DEFAULT", "AES"},
				{"    wrapping-key-spec: RSA_4096\n    valid-to", "    wrapping-keyspec: RSA_4096\n    valid-to"},
				{"no-expiry: true", "no-expiry: false"},
				{"alias: alias/mac-2026", "alias: alias/aes-2026"},
			},
			want: []string{
				"7 problems in ceremony.yaml; fix them all before the ceremony:",
				"\n\tceremony.yaml:5: hsm.pin: PINs never go",
				"\n\tceremony.yaml:8: kms.region is required",
				"\n\tceremony.yaml:14: keys[0].wrapping-key-spec is required",
				"\n\tceremony.yaml:16: keys[0].key-spec: unknown key spec \"AES\"",
				"\n\tceremony.yaml:20: keys[0].wrapping-keyspec: unknown field",
				"\n\tceremony.yaml:22: keys[1]: no expiry chosen",
				"\n\tceremony.yaml:26: keys[1].alias: \"alias/aes-2026\" is also keys[0].alias",
			},
			count: 7,
			never: []string{"4321"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := tt.yaml
			if content == "" {
				content = base
			}
			for _, e := range tt.edits {
				if !strings.Contains(content, e[0]) {
					t.Fatalf("bad test: %q is not in the file", e[0])
				}
				content = strings.Replace(content, e[0], e[1], 1)
			}
			f, err, msg := load(t, content)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Load: %s", msg)
				}
				if f == nil {
					t.Fatal("Load returned neither a file nor an error")
				}
				return
			}
			if err == nil {
				t.Fatalf("Load accepted the file; want an error containing %q", tt.want)
			}
			if f != nil {
				t.Error("Load returned a file along with the error")
			}
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("error does not contain %q (in this order); it is:\n%s", w, msg)
					continue
				}
				rest = rest[i+len(w):]
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is a %T, not Errors", err)
			}
			if len(errs) != tt.count {
				t.Errorf("%d problems reported, want %d:\n%s", len(errs), tt.count, msg)
			}
			for _, s := range tt.never {
				if strings.Contains(msg, s) {
					t.Errorf("error repeats the secret %q:\n%s", s, msg)
				}
			}
			if !errors.Is(err, kmsimport.ErrInvalidInput) {
				t.Error("error does not match kmsimport.ErrInvalidInput")
			}
		})
	}
}

func TestLoadExample(t *testing.T) {
	const path = "testdata/example.yaml"
	f, err := Load(path, now)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if got, want := f.Digest(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("Digest() = %s, want %s", got, want)
	}
	if f.Source() != path {
		t.Errorf("Source() = %q, want %q", f.Source(), path)
	}
	if got, want := f.PINSource(), (PINSource{Prompt: true}); got != want {
		t.Errorf("PINSource() = %+v, want %+v", got, want)
	}
	if got, want := f.ModuleConfig(), (hsm.ModuleConfig{Path: "/usr/lib/softhsm/libsofthsm2.so"}); got != want {
		t.Errorf("ModuleConfig() = %+v, want %+v", got, want)
	}
	if got := f.TokenSelector(); got.Label != "payments-root" || got.Serial != "" || got.Slot != nil {
		t.Errorf("TokenSelector() = %+v, want label payments-root only", got)
	}
	if f.KMS != (KMSConfig{Region: "eu-west-1", Profile: "payments-ceremony"}) {
		t.Errorf("KMS = %+v", f.KMS)
	}
	if f.AuditKey == nil || f.AuditKey.Label != "ceremony-audit" || f.AuditKey.PublicKey != "records/ceremony-audit.pem" {
		t.Errorf("AuditKey = %+v, want label ceremony-audit", f.AuditKey)
	}
	if len(f.Operators) != 3 || f.Record != "records/payments-2026-06-01.json" {
		t.Errorf("Operators = %q, Record = %q", f.Operators, f.Record)
	}

	want := []awskms.Request{
		{
			KeyLabel: "payments-data-2026", Generate: true,
			KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
			Alias: "alias/payments-data-2026", Description: "Payments card-data encryption key, 2026",
			Tags:              awskms.TagsOf(map[string]string{"data-class": "pci", "team": "payments"}),
			WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: awskms.WrappingKeySpecRSA4096,
			Expiry: awskms.Expiry{ValidTo: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
		},
		{
			KeyLabel: "payments-mac-2026", Generate: true,
			KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC",
			Alias: "alias/payments-mac-2026", Description: "Payments webhook MAC key, 2026",
			Tags:              awskms.TagsOf(map[string]string{"team": "payments"}),
			WrappingAlgorithm: "RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec: awskms.WrappingKeySpecRSA4096,
			Expiry: awskms.Expiry{NoExpiry: true},
		},
		{
			KeyLabel: "payments-signer-2025", Generate: false,
			KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY",
			KMSKeyID: "1234abcd-12ab-34cd-56ef-1234567890ab",
			Alias:    "alias/payments-signer-2025", Description: "Payments receipt signing key, 2025",
			WrappingAlgorithm: "RSA_AES_KEY_WRAP_SHA_256", WrappingKeySpec: awskms.WrappingKeySpecRSA4096,
			Expiry: awskms.Expiry{ValidTo: time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC)},
		},
	}
	if len(f.Keys) != len(want) {
		t.Fatalf("%d keys, want %d", len(f.Keys), len(want))
	}
	for i, k := range f.Keys {
		got, err := k.Request(f)
		if err != nil {
			t.Errorf("keys[%d].Request: %v", i, err)
			continue
		}
		if !got.Expiry.ValidTo.Equal(want[i].Expiry.ValidTo) {
			t.Errorf("keys[%d] valid-to = %v, want %v", i, got.Expiry.ValidTo, want[i].Expiry.ValidTo)
		}
		got.Expiry.ValidTo = want[i].Expiry.ValidTo
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("keys[%d].Request =\n%+v\nwant\n%+v", i, got, want[i])
		}
		if err := got.Validate(now); err != nil {
			t.Errorf("keys[%d].Request does not pass kmsimport's Validate: %v", i, err)
		}
	}
}

func TestLoadExampleLaterIsRefused(t *testing.T) {
	// The example's valid-to dates are for a June 2026 ceremony; a year on,
	// the same file must not pass.
	_, err := Load("testdata/example.yaml", now.AddDate(1, 0, 0))
	if err == nil || !strings.Contains(err.Error(), "keys[0].valid-to: valid-to 2026-12-31T00:00:00Z is in the past") {
		t.Fatalf("Load a year later: %v; want keys[0].valid-to in the past", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), now)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v; want fs.ErrNotExist", err)
	}
	if errors.Is(err, kmsimport.ErrInvalidInput) {
		t.Error("a missing file matches ErrInvalidInput; it is not a problem in the file")
	}
	if !errors.Is(err, safefile.ErrBadFile) {
		t.Error("a missing file does not match safefile.ErrBadFile, which the CLI maps to exit 2")
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	yes := true
	f := &File{
		HSM:         HSMConfig{Module: "/usr/lib/softhsm/libsofthsm2.so", Token: TokenConfig{Label: "t"}, PIN: PINSource{Prompt: true}},
		KMS:         KMSConfig{Region: "us-east-1"},
		Record:      "r.json",
		Operators:   []string{"alice"},
		DualControl: DualControl{WrapWithTrusted: &yes},
	}
	err := f.Validate(now)
	if err == nil || err.Error() != "keys is required: list at least one key to import" {
		t.Fatalf("Validate = %v; want only keys is required, with no file or line", err)
	}
	f.Keys = []Key{{
		HSMLabel: "k", Generate: &yes, KeySpec: "HMAC_512", KeyUsage: "GENERATE_VERIFY_MAC",
		Alias: "alias/k", WrappingAlgorithm: "RSAES_OAEP_SHA_1", WrappingKeySpec: "RSA_2048", NoExpiry: true,
	}}
	if err := f.Validate(now); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	req, err := f.Keys[0].Request(f)
	if err != nil {
		t.Fatal(err)
	}
	if !req.WrapWithTrusted || string(req.WrappingKeySpec) != "RSA_2048" {
		t.Errorf("Request = %+v; want WrapWithTrusted and RSA_2048", req)
	}
}

func TestRequestWithoutDualControlFails(t *testing.T) {
	yes := true
	k := Key{HSMLabel: "k", Generate: &yes, KeySpec: "HMAC_256", WrappingKeySpec: "RSA_4096", NoExpiry: true}
	if _, err := k.Request(&File{}); !errors.Is(err, kmsimport.ErrInvalidInput) {
		t.Fatalf("Request with wrap-with-trusted unset: %v; want ErrInvalidInput", err)
	}
}

func TestErrorsAreEachAnError(t *testing.T) {
	_, err, _ := load(t, strings.Replace(base, "region: eu-west-1", "region: nowhere", 1))
	var one *Error
	if !errors.As(err, &one) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	if one.Line != 8 || one.Field != "kms.region" || !strings.HasSuffix(one.File, "ceremony.yaml") {
		t.Errorf("Error = %+v; want line 8, field kms.region, file ceremony.yaml", one)
	}
}
