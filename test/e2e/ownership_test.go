package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// The ownership authority's rules, end to end: a key is kmsbridge's only
// when the token's provenance and this host's journal (for KMS keys: the
// tags and the journal) agree; anything else is refused with what was
// found and the --adopt command, and nothing changes.

// ownArgs are one host's flags: the token, the emulator, one state dir.
func ownArgs(emu *emulator, tok *softhsm.Token, stateDir string) []string {
	return []string{"--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048", "--state-dir", stateDir}
}

// appendJournal appends one raw line to the only journal in dir, as anyone
// who can write the file could.
func appendJournal(t *testing.T, dir, line string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.journal"))
	if err != nil || len(files) != 1 {
		t.Fatalf("journals in %s: %v %v", dir, files, err)
	}
	f, err := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

func journalHas(t *testing.T, dir string, parts ...string) bool {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			all := line != ""
			for _, part := range parts {
				all = all && strings.Contains(line, part)
			}
			if all {
				return true
			}
		}
	}
	return false
}

// writeClearAESKey writes an AES-256 key whose value was in the clear
// into tok with C_CreateObject, as another tool importing a key would:
// sensitive and extractable, so only its provenance (CKA_LOCAL=false,
// CKA_ALWAYS_SENSITIVE=false) says it is not kmsbridge's. The value is
// random test data, never used again.
func writeClearAESKey(t *testing.T, tok *softhsm.Token, label string) {
	t.Helper()
	value := make([]byte, 32)
	if _, err := rand.Read(value); err != nil {
		t.Fatal(err)
	}
	withUserSession(t, tok, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		_, err := p.CreateObject(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, value),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(label)),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func labelCount(t *testing.T, tok *softhsm.Token, label string) int {
	t.Helper()
	labels, err := openInProcess(t, tok).Labels()
	if err != nil {
		t.Fatal(err)
	}
	return labels[label]
}

// TestForgedJournalLineDoesNotMakeAKeyOurs: a line appended to the
// journal, claiming kmsbridge generated the key another tool wrote under
// a label, does not make import --generate take that key over, let alone
// call it generated; --adopt does, recorded with the key's provenance.
func TestForgedJournalLineDoesNotMakeAKeyOurs(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	common := ownArgs(emu, tok, state)
	first := importJSON(t, tok, append(common, "--key-label", "first", "--generate", "--no-expiry")...)
	writeClearAESKey(t, tok, "planted")
	appendJournal(t, state, fmt.Sprintf(`{"kind":"intent","attempt":"00000000deadbeef","time":"%s","command":"import","op":"C_GenerateKey","target":{"KeyLabel":"planted","TokenSerial":%q,"KeySpec":"SYMMETRIC_DEFAULT"},"find":{"KeyLabel":"planted"}}`,
		time.Now().UTC().Format(time.RFC3339), first.HSM.Token.Serial))
	before := emu.keyCount(t)

	r := kmsbridge(t, tok, append([]string{"import"}, append(common, "--key-label", "planted", "--generate", "--no-expiry")...)...)
	if r.Code != 3 || !strings.Contains(r.Stderr, "not proven to be kmsbridge's") || !strings.Contains(r.Stderr, "CKA_LOCAL=false") || !strings.Contains(r.Stderr, "--adopt") {
		t.Fatalf("forged journal line: exit %d, want 3 naming the provenance and --adopt:\n%s", r.Code, r.Stderr)
	}
	if n := emu.keyCount(t); n != before {
		t.Errorf("the refused import left %d KMS keys, want %d", n, before)
	}
	if labelCount(t, tok, "planted") != 1 {
		t.Error("the token's objects under the label changed")
	}

	res := importJSON(t, tok, append(common, "--key-label", "planted", "--generate", "--no-expiry", "--adopt")...)
	if !res.HSM.Adopted || res.HSM.Generated {
		t.Errorf("with --adopt: adopted %v generated %v, want adopted and never generated", res.HSM.Adopted, res.HSM.Generated)
	}
	if !journalHas(t, state, `"op":"adopt"`, `"HsmKeyLabel":"planted"`, `CKA_LOCAL=false`) {
		t.Error("the journal does not carry the adoption with the key's provenance")
	}
}

// TestRotateRefusesAKeyNotMadeByKmsbridgeUnderTheNextLabel: a key another
// tool wrote under the next generation's label is not "from an earlier
// run"; rotate refuses it, changing nothing, until --adopt.
func TestRotateRefusesAKeyNotMadeByKmsbridgeUnderTheNextLabel(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--rotation-delay", "1s")
	tok := newToken(t)
	state := t.TempDir()
	common := ownArgs(emu, tok, state)
	res := importJSON(t, tok, append(common, "--key-label", "pay", "--generate", "--no-expiry")...)
	writeClearAESKey(t, tok, "pay-r2")

	r := kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", res.KeyId, "--no-expiry"}, common...)...)
	if r.Code != 3 || !strings.Contains(r.Stderr, `"pay-r2"`) || !strings.Contains(r.Stderr, "CKA_LOCAL=false") || !strings.Contains(r.Stderr, "--adopt") {
		t.Fatalf("exit %d, want 3 naming pay-r2's provenance and --adopt:\n%s", r.Code, r.Stderr)
	}
	if n := len(materials(t, emu, res.KeyId)); n != 1 {
		t.Errorf("the refused rotation left %d materials, want 1", n)
	}

	r = kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", res.KeyId, "--no-expiry", "--adopt", "--output", "json"}, common...)...)
	var out awskms.RotateResult
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &out) != nil || out.NewHSMKey.KeyLabel != "pay-r2" {
		t.Fatalf("with --adopt: exit %d, new HSM key %+v\n%s", r.Code, out.NewHSMKey, r.Stderr)
	}
	if !journalHas(t, state, `"op":"adopt"`, `"HsmKeyLabel":"pay-r2"`) {
		t.Error("the journal does not carry the adoption")
	}
}

// TestRotateNewKeyLabelRefusesAKeyBackingAnotherKMSKey: one HSM key never
// backs two KMS keys, whatever --new-key-label names.
func TestRotateNewKeyLabelRefusesAKeyBackingAnotherKMSKey(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--rotation-delay", "1s")
	tok := newToken(t)
	common := ownArgs(emu, tok, t.TempDir())
	a := importJSON(t, tok, append(common, "--key-label", "a", "--generate", "--no-expiry")...)
	b := importJSON(t, tok, append(common, "--key-label", "b", "--generate", "--no-expiry")...)

	// Not even --adopt takes it: that would put one material in two keys.
	for _, extra := range [][]string{nil, {"--adopt"}} {
		r := kmsbridge(t, tok, append(append([]string{"rotate", "--kms-key-id", a.KeyId, "--new-key-label", "b", "--no-expiry"}, extra...), common...)...)
		if r.Code != 3 || !strings.Contains(r.Stderr, b.KeyId) || !strings.Contains(r.Stderr, "never backs two KMS keys") {
			t.Fatalf("%v: exit %d, want 3 naming KMS key %s:\n%s", extra, r.Code, b.KeyId, r.Stderr)
		}
		if n := len(materials(t, emu, a.KeyId)); n != 1 {
			t.Errorf("KMS key %s has %d materials after the refusal, want 1", a.KeyId, n)
		}
	}
}

// TestRenewRefusesAKMSKeySomeoneElseTagged: a PendingImport key someone
// else created and tagged with an HMAC HSM key's link tags is not renewed
// into (two KMS keys would hold one HMAC material), by cron-style renew or
// by name, until --adopt.
func TestRenewRefusesAKMSKeySomeoneElseTagged(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	common := ownArgs(emu, tok, t.TempDir())
	res := importJSON(t, tok, append(common, "--key-label", "r", "--generate", "--key-spec", "HMAC_256", "--key-usage", "GENERATE_VERIFY_MAC", "--valid-to", validTo(100*24*time.Hour))...)
	out, err := emu.KMS.CreateKey(context.Background(), &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac, Tags: []types.Tag{
		{TagKey: aws.String(awskms.TagHSMKeyID), TagValue: aws.String(res.HSM.KeyID)},
		{TagKey: aws.String(awskms.TagTokenSerial), TagValue: aws.String(res.HSM.Token.Serial)},
		{TagKey: aws.String(awskms.TagHSMKeyLabel), TagValue: aws.String("r")},
		{TagKey: aws.String(awskms.TagTokenLabel), TagValue: aws.String(tok.Label)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	planted := aws.ToString(out.KeyMetadata.KeyId)

	for _, args := range [][]string{{"renew", "--within", "30"}, {"renew", "--kms-key-id", planted}} {
		r := kmsbridge(t, tok, append(args, common...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, planted) || !strings.Contains(r.Stderr, "not proven to be kmsbridge's") || !strings.Contains(r.Stderr, "--adopt") {
			t.Errorf("%v: exit %d, want 2 naming %s and --adopt:\n%s\n%s", args, r.Code, planted, r.Stderr, r.Stdout)
		}
		if st := keyState(t, emu, planted); st != types.KeyStatePendingImport {
			t.Fatalf("%v: the planted key is %s, want it left PendingImport", args, st)
		}
	}
	if st := keyState(t, emu, res.KeyId); st != types.KeyStateEnabled {
		t.Errorf("kmsbridge's own key is %s, want it Enabled as before", st)
	}
	r := kmsbridge(t, tok, append([]string{"renew", "--kms-key-id", planted, "--adopt"}, common...)...)
	if r.Code != 0 || keyState(t, emu, planted) != types.KeyStateEnabled {
		t.Fatalf("with --adopt: exit %d, planted key %s\n%s", r.Code, keyState(t, emu, planted), r.Stderr)
	}
	if !journalHas(t, common[len(common)-1], `"op":"adopt"`, `"KmsKeyId":"`+planted+`"`) {
		t.Error("the journal does not carry the adoption of the KMS key")
	}
}

// TestConcurrentGenerateOfOneLabel: two import --generate of one label on
// one token at once, talking to different Regions (or spelling the
// endpoint differently), leave one HSM key under the label: uniqueness is
// locked per token.
func TestConcurrentGenerateOfOneLabel(t *testing.T) {
	emu := startEmulator(t)
	localhost := strings.Replace(emu.URL, "127.0.0.1", "localhost", 1)
	for _, c := range []struct {
		name   string
		a, b   []string
		labels string
	}{
		{"two Regions", []string{"--region", "us-east-1", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL}, []string{"--region", "eu-west-1", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL}, "race-regions"},
		{"127.0.0.1 and localhost", []string{"--endpoint-url", emu.URL, "--allow-endpoint", emu.URL}, []string{"--endpoint-url", localhost, "--allow-endpoint", localhost}, "race-hosts"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := newToken(t)
			state := t.TempDir()
			var wg sync.WaitGroup
			runs := make([]run, 2)
			start := make(chan struct{})
			for i, target := range [][]string{c.a, c.b} {
				wg.Add(1)
				go func(i int, target []string) {
					defer wg.Done()
					<-start
					args := append([]string{"import", "--output", "json", "--token-label", tok.Label, "--wrapping-key-spec", "RSA_2048", "--state-dir", state, "--key-label", c.labels, "--generate", "--no-expiry"}, target...)
					runs[i] = kmsbridgeNoFatal(tok, args...)
				}(i, target)
			}
			close(start)
			wg.Wait()
			if n := labelCount(t, tok, c.labels); n != 1 {
				t.Fatalf("%d objects under label %q after two concurrent imports, want 1:\n%s\n%s", n, c.labels, runs[0].Stderr, runs[1].Stderr)
			}
			// Either run may come second. Talking to the same KMS target
			// (one journal), the second is a re-run of the first and takes
			// up its HSM key and KMS key; talking to another, it is refused.
			kmsKeys := map[string]bool{}
			for _, r := range runs {
				if r.Code == 0 {
					var res awskms.Result
					if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
						t.Fatalf("no JSON result: %v\n%s", err, r.Stdout)
					}
					kmsKeys[res.KeyId] = true
				} else if r.Code != 3 {
					// Refused as the label's (exit 3). SoftHSM2's file store
					// may also show a run that opens the token while the other
					// writes to it an uninitialised token, an HSM failure too.
					t.Errorf("the other run: exit %d, want 3:\n%s", r.Code, r.Stderr)
				} else {
					t.Logf("the other run, refused:\n%s", r.Stderr)
				}
			}
			if len(kmsKeys) != 1 {
				t.Errorf("the runs that succeeded made KMS keys %v, want exactly one", kmsKeys)
			}
		})
	}
}

// kmsbridgeNoFatal is kmsbridge for a goroutine: it never calls t.Fatal.
func kmsbridgeNoFatal(tok *softhsm.Token, args ...string) run {
	home, _ := os.MkdirTemp("", "kmsbridge-home-")
	defer os.RemoveAll(home)
	cmd := exec.Command(filepath.Join(binDir, "kmsbridge"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule, "KMSBRIDGE_PIN=" + softhsm.TestPIN, tok.Environ()}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code, r.Stderr = -1, err.Error()
	}
	return r
}

// TestCeremonyRefusesTwoKeysRotatingToOneLabel: rotate-to labels share the
// token's label namespace with hsm-labels; two keys rotating to one label
// are refused when the file is read, before the token or KMS is touched.
func TestCeremonyRefusesTwoKeysRotatingToOneLabel(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "record.jsonl")
	var b strings.Builder
	fmt.Fprintf(&b, "hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n", tok.Module, tok.Label)
	fmt.Fprintf(&b, "kms:\n  region: us-east-1\n  endpoint: %s\nrecord: %s\n", emu.URL, rec)
	b.WriteString("operators:\n  - Alice (custodian)\n  - Bob (witness)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n")
	for _, label := range []string{"pay", "bill"} {
		fmt.Fprintf(&b, "  - hsm-label: %s\n    generate: false\n    key-spec: SYMMETRIC_DEFAULT\n    key-usage: ENCRYPT_DECRYPT\n    alias: alias/%s\n    rotate-to: shared-next\n    wrapping-algorithm: RSAES_OAEP_SHA_256\n    wrapping-key-spec: RSA_2048\n    no-expiry: true\n", label, label)
	}
	file := filepath.Join(dir, "ceremony.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ceremony", "run", file, "--dry-run"}, {"ceremony", "run", file}} {
		r := kmsbridge(t, tok, args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, `keys[1].rotate-to: "shared-next" is also keys[0].rotate-to`) {
			t.Errorf("%v: exit %d, want 2 naming both rotate-to fields:\n%s", args, r.Code, r.Stderr)
		}
	}
	if n := emu.keyCount(t); n != 0 || tokenHasLabel(t, tok, "shared-next") {
		t.Errorf("the refused ceremony left %d KMS keys or an HSM key labelled shared-next", n)
	}
	if _, err := os.Stat(rec); err == nil {
		t.Error("the refused ceremony wrote a record")
	}
}

// generateInToken makes an AES key under label the way another tool
// would, in the token (clean provenance: CKA_LOCAL, always sensitive),
// extractable or not, and returns its CKA_ID in hex.
func generateInToken(t *testing.T, tok *softhsm.Token, label string, extractable bool) string {
	t.Helper()
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	withUserSession(t, tok, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		_, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, extractable),
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	return fmt.Sprintf("%x", id)
}

// TestUnprovenIntentDoesNotAdoptAKey: a journal intent without an outcome
// used to be enough, with a clean provenance, to take the key under its
// label as one kmsbridge generated. Now an intent proves a key only by
// naming the CKA_ID the token reads back from it (kmsbridge journals the
// CKA_ID before it generates), and only a key kmsbridge's template makes
// (extractable by wrapping): an intent naming no CKA_ID (another tool's
// key, a forged line, an earlier version's journal) or a never-extractable
// key is refused (exit 3, nothing changed) with --adopt as the fix.
func TestUnprovenIntentDoesNotAdoptAKey(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	state := t.TempDir()
	common := ownArgs(emu, tok, state)
	first := importJSON(t, tok, append(common, "--key-label", "first", "--generate", "--no-expiry")...)
	serial := first.HSM.Token.Serial
	forge := func(label, idHex string) {
		target := fmt.Sprintf(`{"KeyLabel":%q,"TokenSerial":%q,"KeySpec":"SYMMETRIC_DEFAULT"}`, label, serial)
		if idHex != "" {
			target = fmt.Sprintf(`{"KeyLabel":%q,"TokenSerial":%q,"KeySpec":"SYMMETRIC_DEFAULT","HsmKeyId":%q}`, label, serial, idHex)
		}
		var a [8]byte
		rand.Read(a[:])
		appendJournal(t, state, fmt.Sprintf(`{"kind":"intent","attempt":"%x","time":"%s","command":"import","op":"C_GenerateKey","target":%s,"find":{"KeyLabel":%q}}`,
			a, time.Now().UTC().Format(time.RFC3339), target, label))
	}
	before := emu.keyCount(t)
	refused := func(label, why string) {
		t.Helper()
		r := kmsbridge(t, tok, append([]string{"import"}, append(common, "--key-label", label, "--generate", "--no-expiry")...)...)
		if r.Code != 3 || !strings.Contains(r.Stderr, "not proven to be kmsbridge's") || !strings.Contains(r.Stderr, why) || !strings.Contains(r.Stderr, "--adopt") {
			t.Fatalf("%s: exit %d, want 3 saying %q and naming --adopt:\n%s", label, r.Code, why, r.Stderr)
		}
		if n := emu.keyCount(t); n != before {
			t.Fatalf("%s: the refused import left %d KMS keys, want %d", label, n, before)
		}
	}
	// Another tool's clean key, an intent naming no CKA_ID.
	generateInToken(t, tok, "other", true)
	forge("other", "")
	refused("other", "names no CKA_ID")
	// A never-extractable key, an intent without a CKA_ID, then one naming its own.
	sealed := generateInToken(t, tok, "sealed", false)
	forge("sealed", "")
	refused("sealed", "names no CKA_ID")
	forge("sealed", sealed)
	refused("sealed", "CKA_EXTRACTABLE is false")
	// An intent naming another key's CKA_ID.
	generateInToken(t, tok, "third", true)
	forge("third", first.HSM.KeyID)
	refused("third", "not this key")
}
