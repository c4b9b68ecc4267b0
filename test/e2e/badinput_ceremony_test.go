package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestCatalogueCeremonyAndRecord is the catalogue of bad inputs to
// ceremony run (the file, its PIN source, its record), to the split
// commands' --ceremony, and to record verify.
func TestCatalogueCeremonyAndRecord(t *testing.T) {
	t.Parallel()
	c := newCatalogue(t)
	c.withSplit(t)
	// An alias that leads to a KMS key this ceremony did not make.
	if _, err := c.emu.KMS.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String("alias/not-ours"), TargetKeyId: aws.String(c.awsKeyID)}); err != nil {
		t.Fatal(err)
	}
	newRecord := c.path("c-record.jsonl")
	// yaml writes a ceremony file of one key, with edit applied to its text.
	yaml := func(name string, edit func(string) string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n", c.tok.Module, c.tok.Label)
		fmt.Fprintf(&b, "kms:\n  region: us-east-1\n  endpoint: %[1]s\n  allow-endpoint: %[1]s\nrecord: %s\n", c.emu.URL, newRecord)
		b.WriteString("operators:\n  - Alice (custodian)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n")
		b.WriteString("  - hsm-label: c-data\n    generate: true\n    key-spec: SYMMETRIC_DEFAULT\n    key-usage: ENCRYPT_DECRYPT\n    alias: alias/c-data\n" +
			"    wrapping-algorithm: RSAES_OAEP_SHA_1\n    wrapping-key-spec: RSA_2048\n    no-expiry: true\n")
		s := b.String()
		if edit != nil {
			s = edit(s)
		}
		return c.file(t, name, s, 0o600)
	}
	rep := func(old, new string) func(string) string {
		return func(s string) string {
			if !strings.Contains(s, old) {
				t.Fatalf("ceremony template lacks %q", old)
			}
			return strings.Replace(s, old, new, 1)
		}
	}
	addToKey := func(lines string) func(string) string {
		return rep("    no-expiry: true\n", "    no-expiry: true\n"+lines)
	}
	good := yaml("good.yaml", nil)
	run := func(file string, extra ...string) []string {
		return append([]string{"ceremony", "run", file, "--dry-run"}, extra...)
	}
	var tags strings.Builder
	tags.WriteString("    tags:\n")
	for i := 0; i < 47; i++ {
		fmt.Fprintf(&tags, "      k%d: v\n", i)
	}
	c.file(t, "pin-source-world.txt", c.tok.PIN+"\n", 0o644)
	c.file(t, "not-a-record.jsonl", "{\"hello\": 1}\n", 0o600)
	recLines := strings.SplitAfter(readFileString(t, c.record), "\n")
	tampered := c.file(t, "tampered.jsonl", strings.Replace(readFileString(t, c.record), `"Outcome":"ok"`, `"Outcome":"failed"`, 1), 0o600)
	truncated := c.file(t, "truncated.jsonl", strings.Join(recLines[:len(recLines)-2], ""), 0o600)
	cut := c.file(t, "cut.jsonl", strings.TrimSuffix(readFileString(t, c.record), "\n")[:len(readFileString(t, c.record))-20], 0o600)
	nonPEM := c.file(t, "key.pem", "not a PEM\n", 0o600)
	verify := func(extra ...string) []string { return append([]string{"record", "verify"}, extra...) }
	head := strings.Repeat("0", 64)
	badFile := "give the path of the file itself"

	cases := []badCase{
		// ceremony run: the file itself
		{"ceremony no file", []string{"ceremony", "run"}, 2, []string{"takes one FILE.yaml"}},
		{"ceremony two files", []string{"ceremony", "run", good, good}, 2, []string{"takes one FILE.yaml"}},
		{"ceremony unknown flag", run(good, "--fast"), 2, []string{"flag provided but not defined: -fast", help()}},
		{"ceremony file missing", run(c.path("nosuch.yaml")), 2, []string{"ceremony file", "no such file", "check the path"}},
		{"ceremony file directory", run(c.path("subdir")), 2, []string{"ceremony file", "is a directory", badFile}},
		{"ceremony file fifo", run(c.path("fifo")), 2, []string{"ceremony file", "FIFO", badFile}},
		{"ceremony file dev zero", run(c.path("zero")), 2, []string{"ceremony file", "character device", badFile}},
		{"ceremony file too large", run(c.path("big.bin")), 2, []string{"ceremony file", "larger than 1 MiB"}},
		{"ceremony file not yaml", run(c.file(t, "bad.yaml", "hsm: [unclosed\n", 0o600)), 2, []string{"bad.yaml"}},
		{"ceremony file empty", run(c.path("empty.json")), 2, []string{"empty.json"}},
		{"ceremony unknown field", run(yaml("colour.yaml", rep("operators:", "colour: blue\noperators:"))), 2, []string{"colour"}},
		{"ceremony pin in file", run(yaml("pin.yaml", rep("  pin-source:\n", "  pin: \"1234\"\n  pin-source:\n"))), 2, []string{"PINs never go in the ceremony file", "hsm.pin-source"}},
		{"ceremony no pin source", run(yaml("nopin.yaml", rep("  pin-source:\n    env: KMSBRIDGE_PIN\n", ""))), 2, []string{"hsm.pin-source is required", "exactly one of env"}},
		{"ceremony two pin sources", run(yaml("twopin.yaml", rep("    env: KMSBRIDGE_PIN\n", "    env: KMSBRIDGE_PIN\n    prompt: true\n"))), 2, []string{"hsm.pin-source must have exactly one"}},
		{"ceremony pin env not a name", run(yaml("pinenv.yaml", rep("env: KMSBRIDGE_PIN", "env: \"12 34\""))), 2, []string{"hsm.pin-source.env", "never the PIN itself"}},
		{"ceremony no keys", run(yaml("nokeys.yaml", func(s string) string { return s[:strings.Index(s, "keys:")] })), 2, []string{"keys"}},
		{"ceremony no operators", run(yaml("noops.yaml", rep("operators:\n  - Alice (custodian)\n", ""))), 2, []string{"operators"}},
		{"ceremony endpoint not url", run(yaml("endpoint.yaml", rep("endpoint: "+c.emu.URL, "endpoint: not-a-url"))), 2, []string{"kms.endpoint"}},
		// ceremony run: KMS's rules, in the file's terms
		{"ceremony tag aws", run(yaml("tagaws.yaml", addToKey("    tags:\n      aws:owner: me\n"))), 2, []string{"keys[0].tags.aws:owner", "reserved for AWS", "without the aws: prefix"}},
		{"ceremony tag kmsbridge", run(yaml("tagkb.yaml", addToKey("    tags:\n      kmsbridge:hsm-key-id: \"01\"\n"))), 2, []string{"keys[0].tags.kmsbridge:hsm-key-id", "set by kmsbridge itself"}},
		{"ceremony too many tags", run(yaml("tags47.yaml", addToKey(tags.String()))), 2, []string{"keys[0].tags:", "47 tags given", "at most 45"}},
		{"ceremony tag value too long", run(yaml("tagval.yaml", addToKey("    tags:\n      k: "+strings.Repeat("v", 300)+"\n"))), 2, []string{"keys[0].tags.k", "300 characters", "at most 256"}},
		{"ceremony tag key too long", run(yaml("tagkey.yaml", addToKey("    tags:\n      "+strings.Repeat("k", 130)+": v\n"))), 2, []string{"keys[0].tags.", "130 characters; KMS allows at most 128"}},
		{"ceremony tag bad character", run(yaml("tagchar.yaml", addToKey("    tags:\n      \"a*b\": v\n"))), 2, []string{"keys[0].tags.a*b", "character KMS does not allow"}},
		{"ceremony description too long", run(yaml("desc.yaml", addToKey("    description: "+strings.Repeat("d", 8200)+"\n"))), 2, []string{"keys[0].description", "8200 characters; KMS allows at most 8192"}},
		{"ceremony alias reserved", run(yaml("aliasaws.yaml", rep("alias: alias/c-data", "alias: alias/aws/c-data"))), 2, []string{"keys[0].alias", "reserved for AWS managed keys"}},
		{"ceremony alias too long", run(yaml("aliaslong.yaml", rep("alias: alias/c-data", "alias: alias/"+strings.Repeat("a", 260)))), 2, []string{"keys[0].alias", "at most 256"}},
		{"ceremony alias no prefix", run(yaml("aliasnp.yaml", rep("alias: alias/c-data", "alias: c-data"))), 2, []string{"keys[0].alias", "must start with alias/"}},
		{"ceremony label newline", run(yaml("labelnl.yaml", rep("hsm-label: c-data", "hsm-label: \"c\\ndata\""))), 2, []string{"keys[0].hsm-label", "control character"}},
		{"ceremony label too long", run(yaml("labellong.yaml", rep("hsm-label: c-data", "hsm-label: "+strings.Repeat("l", 300)))), 2, []string{"keys[0].hsm-label", "at most 256"}},
		{"ceremony unknown key spec", run(yaml("spec.yaml", rep("key-spec: SYMMETRIC_DEFAULT", "key-spec: AES_512"))), 2, []string{"keys[0].key-spec", "choose one of"}},
		{"ceremony usage not for spec", run(yaml("usage.yaml", rep("key-usage: ENCRYPT_DECRYPT", "key-usage: SIGN_VERIFY"))), 2, []string{"keys[0].key-usage"}},
		{"ceremony pkcs1", run(yaml("pkcs1.yaml", rep("wrapping-algorithm: RSAES_OAEP_SHA_1", "wrapping-algorithm: RSAES_PKCS1_V1_5"))), 2, []string{"keys[0].wrapping-algorithm", "refused"}},
		{"ceremony both expiries", run(yaml("exp.yaml", addToKey("    valid-to: 2030-01-01\n"))), 2, []string{"keys[0]", "both"}},
		{"ceremony valid-to not a time", run(yaml("exp2.yaml", rep("    no-expiry: true\n", "    valid-to: soon\n"))), 2, []string{"keys[0].valid-to"}},
		{"ceremony duplicate label", run(yaml("dup.yaml", func(s string) string { return s + s[strings.Index(s, "  - hsm-label"):] })), 2, []string{"hsm-label", "each key needs its own HSM key"}},
		{"ceremony wrap-with-trusted", run(yaml("wwt.yaml", rep("wrap-with-trusted: false", "wrap-with-trusted: true"))), 2, []string{"wrap-with-trusted is true", "prepare, approve, wrap and upload"}},
		// ceremony run: the world the file names
		{"ceremony record dir missing", run(yaml("recdir.yaml", rep("record: "+newRecord, "record: "+c.path("nodir/r.jsonl")))), 2, []string{"record", "does not exist", "mkdir -p"}},
		{"ceremony record is a directory", run(yaml("recisdir.yaml", rep("record: "+newRecord, "record: "+c.path("subdir")))), 2, []string{"record", "is a directory"}},
		{"ceremony record is a fifo", run(yaml("recfifo.yaml", rep("record: "+newRecord, "record: "+c.path("fifo")))), 2, []string{"record", "FIFO"}},
		{"ceremony record does not verify", run(yaml("rectamper.yaml", rep("record: "+newRecord, "record: "+tampered))), 2, []string{"does not verify", "kmsbridge record verify"}},
		{"ceremony endpoint not kms", run(yaml("notkms.yaml", rep("endpoint: "+c.emu.URL+"\n  allow-endpoint: "+c.emu.URL, "endpoint: "+c.notKMS+"\n  allow-endpoint: "+c.notKMS))), 4, []string{"does not speak the KMS API"}},
		{"ceremony unknown token", run(yaml("tok.yaml", rep("    label: "+c.tok.Label, "    label: nosuch"))), 3, []string{`no token with label "nosuch"`}},
		{"ceremony pin env unset, ambient pin ignored", run(yaml("pinunset.yaml", rep("env: KMSBRIDGE_PIN", "env: CEREMONY_PIN_UNSET"))), 3, []string{"hsm.pin-source.env", "$CEREMONY_PIN_UNSET, which is not set", "export CEREMONY_PIN_UNSET"}},
		{"ceremony pin file world readable", run(yaml("pinworld.yaml", rep("env: KMSBRIDGE_PIN", "file: "+c.path("pin-source-world.txt")))), 2, []string{"hsm.pin-source.file", "chmod 600"}},
		{"ceremony pin file missing", run(yaml("pinmissing.yaml", rep("env: KMSBRIDGE_PIN", "file: "+c.path("nosuch-pin")))), 2, []string{"hsm.pin-source.file", "no such file"}},
		{"ceremony pin prompt without terminal", run(yaml("pinprompt.yaml", rep("env: KMSBRIDGE_PIN", "prompt: true"))), 3, []string{"hsm.pin-source.prompt", "no terminal"}},
		{"ceremony import a key the token lacks", run(yaml("lacks.yaml", rep("generate: true", "generate: false"))), 2, []string{"the token has no HSM key labelled \"c-data\"", "generate: false"}},
		{"ceremony alias leads to aws_kms key", run(yaml("notours.yaml", rep("alias: alias/c-data", "alias: alias/not-ours"))), 2, []string{"alias alias/not-ours", "not EXTERNAL"}},
		{"ceremony audit key unknown", run(yaml("audit.yaml", rep("operators:", "audit-key:\n  label: nosuch-audit\noperators:")), "--dry-run=false"), 3, []string{"nosuch-audit", "kmsbridge audit-key create"}},

		// the split commands with --ceremony
		{"split key not in file", []string{"prepare", "--ceremony", good, "--key", "nosuch", "--out", c.path("o.json")}, 2, []string{`--key "nosuch" is not a key of`, "c-data"}},
		{"split key without ceremony", []string{"prepare", "--key", "c-data", "--out", c.path("o.json"), "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL}, 2, []string{"--ceremony FILE"}},
		{"split ceremony file fifo", []string{"prepare", "--ceremony", c.path("fifo"), "--key", "c-data", "--out", c.path("o.json")}, 2, []string{"FIFO"}},
		{"split ceremony pin source authoritative", []string{"wrap", "--ceremony", yaml("splitpin.yaml", rep("env: KMSBRIDGE_PIN", "env: SPLIT_PIN_UNSET")), "--key", "c-data",
			"--bundle", c.bundle, "--expect-fingerprint", c.fingerprint, "--out", c.path("o.json")}, 3, []string{"hsm.pin-source.env", "$SPLIT_PIN_UNSET, which is not set"}},
		{"split ceremony pin file world readable", []string{"wrap", "--ceremony", yaml("splitpinfile.yaml", rep("env: KMSBRIDGE_PIN", "file: "+c.path("pin-source-world.txt"))), "--key", "c-data",
			"--bundle", c.bundle, "--expect-fingerprint", c.fingerprint, "--out", c.path("o.json")}, 2, []string{"hsm.pin-source.file", "chmod 600"}},

		// record verify
		{"record verify no file", verify(), 2, []string{"takes one FILE"}},
		{"record verify two files", verify(c.record, c.record), 2, []string{"takes one FILE"}},
		{"record verify directory", verify(c.path("subdir")), 2, []string{"ceremony record", "is a directory", badFile}},
		{"record verify fifo", verify(c.path("fifo")), 2, []string{"ceremony record", "FIFO"}},
		{"record verify dev zero", verify(c.path("zero")), 2, []string{"ceremony record", "character device"}},
		{"record verify missing", verify(c.path("nosuch.jsonl")), 2, []string{"no such file"}},
		{"record verify head not hex", verify("--expect-head", "zz", c.record), 2, []string{`--expect-head "zz" is not 64 hex digits`, "written down"}},
		{"record verify head short", verify("--expect-head", "abcd", c.record), 2, []string{"is not 64 hex digits"}},
		{"record verify negative count", verify("--expect-count", "-1", c.record), 2, []string{"--expect-count -1", "1 or more"}},
		{"record verify zero count", verify("--expect-count", "0", c.record), 2, []string{"--expect-count 0", "1 or more"}},
		{"record verify count not a number", verify("--expect-count", "many", c.record), 2, []string{"invalid value \"many\"", help()}},
		{"record verify public key missing", verify("--public-key", c.path("nosuch.pem"), c.record), 2, []string{"--public-key", "no such file"}},
		{"record verify public key not pem", verify("--public-key", nonPEM, c.record), 2, []string{"--public-key"}},
		{"record verify public key fifo", verify("--public-key", c.path("fifo"), c.record), 2, []string{"--public-key", "FIFO"}},
		{"record verify public key too large", verify("--public-key", c.path("big.bin"), c.record), 2, []string{"--public-key", "larger than 64 KiB"}},
		{"record verify not a record", verify(c.path("not-a-record.jsonl")), 5, []string{"entry 1"}},
		{"record verify a huge line", verify(c.path("big.bin")), 5, []string{"longer than", "not a kmsbridge ceremony record"}},
		{"record verify tampered", verify(tampered), 5, []string{"entry"}},
		{"record verify cut line", verify(cut), 5, []string{"entry"}},
		{"record verify truncated against count", verify("--expect-count", fmt.Sprint(len(recLines)-1), truncated), 5, []string{"missing from the end"}},
		{"record verify head mismatch", verify("--expect-head", head, c.record), 5, []string{head[:16]}},
		{"record verify unsigned against key", verify("--public-key", c.path("key.pem"), c.record), 2, []string{"--public-key"}},
	}
	c.run(t, cases)
}

func help() string { return "--help" }

func readFileString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
