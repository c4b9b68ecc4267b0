package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// The exactly-once suite: every fault kind the emulator can inject, at
// the first call of every KMS operation a command makes, and a SIGKILL at
// every step boundary and around every change; after the documented
// recovery (running the same command again) there is exactly one KMS key
// per HSM key, Enabled, holding that key's material, every EXTERNAL key
// is in the journal, the record verifies, and no message said nothing had
// changed when something had.

var faultKinds = []string{"InternalError", "Throttling", "Reset", "Hang", "LostResponse"}

// faultLimit keeps the suite to a few minutes on a shared 2-core machine:
// at most this many scenarios run at once, each with its own emulator and
// token.
var faultLimit = make(chan struct{}, 3)

func (e *emulator) inject(t *testing.T, op, kind string) {
	t.Helper()
	in := map[string]any{"Operation": op, "Fault": kind, "Occurrence": 1, "Count": 1}
	if kind == "Hang" {
		in["HangMillis"] = 4000 // longer than the --kms-timeout the suite gives
	}
	var out struct{ FaultId int }
	e.raw(t, "KmsBridgeInjectFault", in, &out)
}

// calls is how often each operation was called since the emulator started.
func (e *emulator) calls(t *testing.T) map[string]int {
	t.Helper()
	var out struct{ Calls map[string]int }
	e.raw(t, "KmsBridgeListFaults", map[string]any{}, &out)
	return out.Calls
}

// kmsOps are the operations a baseline run called, sorted.
func kmsOps(calls map[string]int) []string {
	var ops []string
	for op, n := range calls {
		if n > 0 && !strings.HasPrefix(op, "KmsBridge") {
			ops = append(ops, op)
		}
	}
	sort.Strings(ops)
	return ops
}

// allKeys lists every KMS key with its metadata and tags.
func allKeys(t *testing.T, e *emulator) map[string]*kmsimport.KMSKeyState {
	t.Helper()
	ctx := context.Background()
	out, err := e.KMS.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*kmsimport.KMSKeyState{}
	for _, k := range out.Keys {
		st, err := kmsimport.DescribeKMSKey(ctx, e.KMS, aws.ToString(k.KeyId))
		if err != nil {
			t.Fatal(err)
		}
		keys[aws.ToString(k.KeyId)] = st
	}
	return keys
}

// saidNothingChanged fails the test when a run said nothing was changed
// although KMS holds a key or the token holds the label.
func saidNothingChanged(t *testing.T, r run, e *emulator, tok *softhsm.Token, labels ...string) {
	t.Helper()
	if !strings.Contains(r.Stderr, "othing was changed") && !strings.Contains(r.Stderr, "nothing changed") {
		return
	}
	if n := len(allKeys(t, e)); n > 0 {
		t.Errorf("a run said nothing was changed, but KMS holds %d keys:\n%s", n, r.Stderr)
	}
	inToken(t, tok, func(tk *hsm.Token) {
		for _, l := range labels {
			if in, err := tk.LabelInUse(l); err != nil || in {
				t.Errorf("a run said nothing was changed, but the token holds %q (%v):\n%s", l, err, r.Stderr)
			}
		}
	})
}

// wantExactlyOnce checks the end state for the HSM keys labelled labels.
func wantExactlyOnce(t *testing.T, e *emulator, tok *softhsm.Token, stateDir, record string, labels ...string) {
	t.Helper()
	keys := allKeys(t, e)
	journal := readJournals(t, stateDir)
	for id, st := range keys {
		if st.Metadata.Origin == types.OriginTypeExternal && !strings.Contains(journal, st.Tags[kmsimport.TagAttempt]+`"`) || st.Tags[kmsimport.TagAttempt] == "" {
			t.Errorf("EXTERNAL KMS key %s (%s) has no CreateKey attempt in the journal (tags %v)", id, st.Metadata.KeyState, st.Tags)
		}
	}
	hsmKeys := map[string]*hsm.Key{}
	inToken(t, tok, func(tk *hsm.Token) {
		for _, label := range labels {
			k, err := findAnyKey(tk, label)
			if err != nil {
				t.Errorf("HSM key %q: %v", label, err)
				continue
			}
			hsmKeys[label] = k
		}
	})
	for _, label := range labels {
		k := hsmKeys[label]
		if k == nil {
			continue
		}
		var linked []string
		for id, st := range keys {
			if st.Tags[kmsimport.TagHSMKeyID] == k.IDHex() && st.Metadata.KeyState != types.KeyStatePendingDeletion {
				linked = append(linked, id)
			}
		}
		if len(linked) != 1 {
			t.Errorf("HSM key %q (CKA_ID %s) is linked to %d KMS keys, want exactly 1: %v", label, k.IDHex(), len(linked), linked)
			continue
		}
		st := keys[linked[0]]
		if st.Metadata.KeyState != types.KeyStateEnabled {
			t.Errorf("KMS key %s of %q is %s, want Enabled", linked[0], label, st.Metadata.KeyState)
		}
		if st.Metadata.KeySpec == types.KeySpecSymmetricDefault {
			if got, want := e.checkValue(t, linked[0]), k.CheckValueHex(); !strings.EqualFold(got, want) {
				t.Errorf("KMS key %s check value %s, HSM key %q %s: not the same material", linked[0], got, label, want)
			}
		}
	}
	if record != "" {
		if r := kmsbridge(t, nil, "record", "verify", record); r.Code != 0 {
			t.Errorf("record verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
		}
	}
}

// newTokenLocked provisions a token under tokenMu: provisioning loads
// the PKCS#11 module in this process.
func newTokenLocked(t *testing.T) *softhsm.Token {
	tokenMu.Lock()
	defer tokenMu.Unlock()
	return newToken(t)
}

// tail is the last n lines of s, for the log of a scenario.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tokenMu serialises in-process token access: SoftHSM2 finds its
// configuration through a process-wide environment variable.
var tokenMu sync.Mutex

// inToken opens tok in this process, logged in, for fn, and closes it.
func inToken(t *testing.T, tok *softhsm.Token, fn func(*hsm.Token)) {
	t.Helper()
	tokenMu.Lock()
	defer tokenMu.Unlock()
	old, had := os.LookupEnv(softhsm.ConfEnv)
	os.Setenv(softhsm.ConfEnv, tok.Conf)
	defer func() {
		if had {
			os.Setenv(softhsm.ConfEnv, old)
		} else {
			os.Unsetenv(softhsm.ConfEnv)
		}
	}()
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	fn(tk)
}

// findAnyKey finds the secret or private key labelled label.
func findAnyKey(tk *hsm.Token, label string) (*hsm.Key, error) {
	for _, p := range []hsm.KeyParams{hsm.AES256(), hsm.HMACKey(32), hsm.ECKey(hsm.P256)} {
		if k, err := tk.FindKey(hsm.KeySelector{Label: label}, p); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("no key labelled %q", label)
}

func readJournals(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(dir, "*.journal"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
	}
	return b.String()
}

// scenario is one fault or crash and the command it hits.
type scenario struct {
	name  string
	fault [2]string // operation, kind
	kill  string    // kmsimport crash point
}

func (s scenario) env() []string {
	if s.kill == "" {
		return nil
	}
	return []string{kmsimport.EnvTestKillAt + "=" + s.kill, kmsimport.EnvTestKillGuard + "=" + kmsimport.TestKillGuard}
}

// faultScenarios is every fault kind at every operation of ops.
func faultScenarios(ops []string) []scenario {
	var out []scenario
	for _, op := range ops {
		for _, k := range faultKinds {
			out = append(out, scenario{name: op + "/" + k, fault: [2]string{op, k}})
		}
	}
	return out
}

// killScenarios is a SIGKILL after every step and around every change.
func killScenarios(steps, changes []string) []scenario {
	var out []scenario
	for _, s := range steps {
		out = append(out, scenario{name: "kill/step:" + s, kill: "step:" + s})
	}
	for _, c := range changes {
		out = append(out, scenario{name: "kill/intent:" + c, kill: "intent:" + c}, scenario{name: "kill/called:" + c, kill: "called:" + c})
	}
	return out
}

var importSteps = []string{kmsimport.StepValidate, kmsimport.StepSelectKey, kmsimport.StepProbe, kmsimport.StepCheckKMS, kmsimport.StepGenerate,
	kmsimport.StepCreateKey, kmsimport.StepGetParameters, kmsimport.StepWrap, kmsimport.StepImport, kmsimport.StepAlias}

// runScenarios runs each scenario in a parallel subtest, at most
// cap(faultLimit) at once.
func runScenarios(t *testing.T, scenarios []scenario, fn func(t *testing.T, s scenario)) {
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			faultLimit <- struct{}{}
			defer func() { <-faultLimit }()
			fn(t, s)
		})
	}
}

// baselineOps runs fn once with no fault and returns the operations it
// called.
func baselineOps(t *testing.T, fn func(e *emulator)) []string {
	e := startEmulator(t, "--lenient-pkcs8-padding")
	fn(e)
	return kmsOps(e.calls(t))
}

func TestExactlyOnceImport(t *testing.T) {
	importArgs := func(e *emulator, tok *softhsm.Token, state, rec string) []string {
		return []string{"import", "--endpoint-url", e.URL, "--token-label", tok.Label, "--key-label", "k", "--generate",
			"--alias", "alias/k", "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--no-expiry",
			"--kms-timeout", "1s", "--state-dir", state, "--record", rec}
	}
	ops := baselineOps(t, func(e *emulator) {
		tok := newTokenLocked(t)
		dir := t.TempDir()
		if r := kmsbridge(t, tok, importArgs(e, tok, dir, filepath.Join(dir, "r.jsonl"))...); r.Code != 0 {
			t.Fatalf("baseline import: exit %d\n%s", r.Code, r.Stderr)
		}
	})
	for _, want := range []string{"CreateKey", "ImportKeyMaterial", "CreateAlias", "GetParametersForImport"} {
		if !slices.Contains(ops, want) {
			t.Fatalf("baseline import called %v, not %s", ops, want)
		}
	}
	scenarios := append(faultScenarios(ops), killScenarios(importSteps, []string{"C_GenerateKey", "CreateKey", "ImportKeyMaterial", "CreateAlias"})...)
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		e := startEmulator(t)
		tok := newTokenLocked(t)
		dir := t.TempDir()
		rec := filepath.Join(dir, "record.jsonl")
		args := importArgs(e, tok, dir, rec)
		if s.fault[0] != "" {
			e.inject(t, s.fault[0], s.fault[1])
		}
		first := kmsbridge(t, tok, append(s.env(), args...)...)
		t.Logf("first run: exit %d\n%s", first.Code, tail(first.Stderr, 8))
		saidNothingChanged(t, first, e, tok, "k")
		if first.Code != 0 {
			if s.kill == "" && !strings.Contains(first.Stderr, "To finish") && !strings.Contains(first.Stderr, "othing was changed") {
				t.Errorf("a failed run says neither what exists and how to finish, nor that nothing changed:\n%s", first.Stderr)
			}
			again := kmsbridge(t, tok, args...)
			if again.Code != 0 {
				t.Fatalf("re-running the same import did not finish the job: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, first.Stderr, again.Stderr)
			}
		}
		wantExactlyOnce(t, e, tok, dir, rec, "k")
	})
}

func TestExactlyOnceSplit(t *testing.T) {
	prepareArgs := func(e *emulator, state, bundle, rec string) []string {
		return []string{"prepare", "--endpoint-url", e.URL, "--alias", "alias/s", "--wrapping-algorithm", "RSAES_OAEP_SHA_1",
			"--wrapping-key-spec", "RSA_2048", "--kms-timeout", "1s", "--state-dir", state, "--record", rec, "--out", bundle}
	}
	uploadArgs := func(e *emulator, state, bundle, wrapped, rec string) []string {
		return []string{"upload", "--endpoint-url", e.URL, "--wrapped", wrapped, "--bundle", bundle, "--no-expiry",
			"--kms-timeout", "1s", "--state-dir", state, "--record", rec}
	}
	wrap := func(t *testing.T, tok *softhsm.Token, bundle, wrapped string) {
		var b kmsimport.Bundle
		readJSON(t, bundle, &b)
		if r := kmsbridge(t, tok, "wrap", "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
			"--key-label", "s", "--generate", "--out", wrapped); r.Code != 0 {
			t.Fatalf("wrap: exit %d\n%s", r.Code, r.Stderr)
		}
	}
	var prepOps, upOps []string
	{
		e := startEmulator(t)
		tok := newTokenLocked(t)
		dir := t.TempDir()
		bundle, wrapped, rec := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json"), filepath.Join(dir, "r.jsonl")
		if r := kmsbridge(t, nil, prepareArgs(e, dir, bundle, rec)...); r.Code != 0 {
			t.Fatalf("baseline prepare: exit %d\n%s", r.Code, r.Stderr)
		}
		before := e.calls(t)
		prepOps = kmsOps(before)
		wrap(t, tok, bundle, wrapped)
		if r := kmsbridge(t, nil, uploadArgs(e, dir, bundle, wrapped, rec)...); r.Code != 0 {
			t.Fatalf("baseline upload: exit %d\n%s", r.Code, r.Stderr)
		}
		after := e.calls(t)
		for op, n := range after {
			if n > before[op] {
				upOps = append(upOps, op)
			}
		}
		sort.Strings(upOps)
	}
	var scenarios []scenario
	for _, s := range faultScenarios(prepOps) {
		s.name = "prepare/" + s.name
		scenarios = append(scenarios, s)
	}
	for _, s := range faultScenarios(upOps) {
		s.name = "upload/" + s.name
		scenarios = append(scenarios, s)
	}
	for _, s := range killScenarios([]string{kmsimport.StepCheckKMS, kmsimport.StepCreateKey, kmsimport.StepAlias, kmsimport.StepGetParameters}, []string{"CreateKey", "CreateAlias"}) {
		s.name = "prepare/" + s.name
		scenarios = append(scenarios, s)
	}
	for _, s := range killScenarios([]string{kmsimport.StepCheckKMS, kmsimport.StepCreateKey, kmsimport.StepImport}, []string{"TagResource", "ImportKeyMaterial"}) {
		s.name = "upload/" + s.name
		scenarios = append(scenarios, s)
	}
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		e := startEmulator(t)
		tok := newTokenLocked(t)
		dir := t.TempDir()
		bundle, wrapped, rec := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json"), filepath.Join(dir, "r.jsonl")
		onPrepare := strings.HasPrefix(s.name, "prepare/")
		if onPrepare && s.fault[0] != "" {
			e.inject(t, s.fault[0], s.fault[1])
		}
		env := []string(nil)
		if onPrepare {
			env = s.env()
		}
		r := kmsbridge(t, nil, append(env, prepareArgs(e, dir, bundle, rec)...)...)
		saidNothingChanged(t, r, e, tok)
		if r.Code != 0 {
			if r = kmsbridge(t, nil, prepareArgs(e, dir, bundle, rec)...); r.Code != 0 {
				t.Fatalf("re-running the same prepare did not finish: exit %d\n%s", r.Code, r.Stderr)
			}
		}
		if n := len(allKeys(t, e)); n != 1 {
			t.Fatalf("after prepare and its recovery KMS holds %d keys, want 1", n)
		}
		wrap(t, tok, bundle, wrapped)
		if !onPrepare && s.fault[0] != "" {
			e.inject(t, s.fault[0], s.fault[1])
		}
		env = nil
		if !onPrepare {
			env = s.env()
		}
		r = kmsbridge(t, nil, append(env, uploadArgs(e, dir, bundle, wrapped, rec)...)...)
		if r.Code != 0 {
			if strings.Contains(r.Stderr, "kmsbridge import") {
				t.Errorf("upload's failure gives import's advice:\n%s", r.Stderr)
			}
			if again := kmsbridge(t, nil, uploadArgs(e, dir, bundle, wrapped, rec)...); again.Code != 0 {
				t.Fatalf("re-running the same upload did not finish: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, r.Stderr, again.Stderr)
			}
		}
		wantExactlyOnce(t, e, tok, dir, rec, "s")
	})
}

func TestExactlyOnceDeleteMaterial(t *testing.T) {
	setup := func(t *testing.T) (*emulator, *softhsm.Token, string, string) {
		e := startEmulator(t)
		tok := newTokenLocked(t)
		dir := t.TempDir()
		res := importJSON(t, tok, "--endpoint-url", e.URL, "--token-label", tok.Label, "--key-label", "d", "--generate",
			"--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--no-expiry", "--state-dir", dir)
		return e, tok, dir, res.KeyId
	}
	var ops []string
	{
		e, _, dir, id := setup(t)
		before := e.calls(t)
		if r := kmsbridge(t, nil, "delete-material", "--endpoint-url", e.URL, "--kms-key-id", id, "--yes", "--state-dir", dir); r.Code != 0 {
			t.Fatalf("baseline delete-material: exit %d\n%s", r.Code, r.Stderr)
		}
		for op, n := range e.calls(t) {
			if n > before[op] {
				ops = append(ops, op)
			}
		}
		sort.Strings(ops)
	}
	scenarios := append(faultScenarios(ops), scenario{name: "kill/intent:DeleteImportedKeyMaterial", kill: "intent:DeleteImportedKeyMaterial"},
		scenario{name: "kill/called:DeleteImportedKeyMaterial", kill: "called:DeleteImportedKeyMaterial"})
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		e, _, dir, id := setup(t)
		args := []string{"delete-material", "--endpoint-url", e.URL, "--kms-key-id", id, "--yes", "--kms-timeout", "1s", "--state-dir", dir}
		if s.fault[0] != "" {
			e.inject(t, s.fault[0], s.fault[1])
		}
		if r := kmsbridge(t, nil, append(s.env(), args...)...); r.Code != 0 {
			if again := kmsbridge(t, nil, args...); again.Code != 0 {
				t.Fatalf("re-running the same delete-material did not finish: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, r.Stderr, again.Stderr)
			}
		}
		keys := allKeys(t, e)
		if len(keys) != 1 || keys[id] == nil || keys[id].Metadata.KeyState != types.KeyStatePendingImport {
			t.Errorf("after delete-material and its recovery: %d keys, key %s state %v, want one key, PendingImport", len(keys), id, keys[id])
		}
	})
}

// ceremony3 is the three-key ceremony of the suite: symmetric, HMAC, EC.
func ceremony3(t *testing.T, dir, endpoint, record string, tok *softhsm.Token) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n", tok.Module, tok.Label)
	fmt.Fprintf(&b, "kms:\n  region: us-east-1\n  endpoint: %s\nrecord: %s\n", endpoint, record)
	b.WriteString("operators:\n  - Alice (custodian)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n")
	for _, k := range [][4]string{
		{"x-data", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "RSAES_OAEP_SHA_1"},
		{"x-mac", "HMAC_256", "GENERATE_VERIFY_MAC", "RSA_AES_KEY_WRAP_SHA_1"},
		{"x-sign", "ECC_NIST_P256", "SIGN_VERIFY", "RSA_AES_KEY_WRAP_SHA_1"},
	} {
		fmt.Fprintf(&b, "  - hsm-label: %s\n    generate: true\n    key-spec: %s\n    key-usage: %s\n    alias: alias/%s\n    wrapping-algorithm: %s\n    wrapping-key-spec: RSA_2048\n    no-expiry: true\n",
			k[0], k[1], k[2], k[0], k[3])
	}
	path := filepath.Join(dir, "ceremony.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExactlyOnceCeremony(t *testing.T) {
	labels := []string{"x-data", "x-mac", "x-sign"}
	ops := baselineOps(t, func(e *emulator) {
		tok := newTokenLocked(t)
		dir := t.TempDir()
		file := ceremony3(t, dir, e.URL, filepath.Join(dir, "r.jsonl"), tok)
		if r := kmsbridge(t, tok, "ceremony", "run", file, "--state-dir", dir); r.Code != 0 {
			t.Fatalf("baseline ceremony: exit %d\n%s", r.Code, r.Stderr)
		}
	})
	scenarios := append(faultScenarios(ops), killScenarios([]string{kmsimport.StepGenerate, kmsimport.StepCreateKey, kmsimport.StepImport, kmsimport.StepAlias},
		[]string{"C_GenerateKey", "C_GenerateKeyPair", "CreateKey", "ImportKeyMaterial", "CreateAlias"})...)
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		e := startEmulator(t, "--lenient-pkcs8-padding")
		tok := newTokenLocked(t)
		dir := t.TempDir()
		rec := filepath.Join(dir, "record.jsonl")
		file := ceremony3(t, dir, e.URL, rec, tok)
		args := []string{"ceremony", "run", file, "--state-dir", dir, "--kms-timeout", "1s"}
		if s.fault[0] != "" {
			e.inject(t, s.fault[0], s.fault[1])
		}
		first := kmsbridge(t, tok, append(s.env(), args...)...)
		saidNothingChanged(t, first, e, tok, labels...)
		if first.Code != 0 {
			if again := kmsbridge(t, tok, args...); again.Code != 0 {
				t.Fatalf("re-running the same ceremony did not finish: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, first.Stderr, again.Stderr)
			}
		}
		wantExactlyOnce(t, e, tok, dir, rec, labels...)
		for _, l := range labels[1:] {
			if r := kmsbridge(t, tok, "verify", "--endpoint-url", e.URL, "--token-label", tok.Label, "--key-label", l, "--kms-key-id", "alias/"+l); r.Code != 0 {
				t.Errorf("verify %s: exit %d\n%s", l, r.Code, r.Stderr)
			}
		}
	})
}

// Two ceremony runs of one file at once: one refuses (the record is
// locked) or waits, and neither creates anything twice.
func TestExactlyOnceConcurrentCeremonies(t *testing.T) {
	e := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newTokenLocked(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "record.jsonl")
	file := ceremony3(t, dir, e.URL, rec, tok)
	var wg sync.WaitGroup
	runs := make([]run, 2)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = kmsbridge(t, tok, "ceremony", "run", file, "--state-dir", dir)
		}()
	}
	wg.Wait()
	ok := 0
	for _, r := range runs {
		if r.Code == 0 {
			ok++
		} else if !strings.Contains(r.Stderr, "another kmsbridge") && r.Code != 3 {
			// SoftHSM2 itself may fail one of two processes opening its
			// token at the same moment (exit 3, before any change): that
			// is a refusal too. Anything else is not.
			t.Errorf("a concurrent run failed for another reason than the lock: exit %d\n%s", r.Code, r.Stderr)
		}
	}
	if ok == 0 {
		if r := kmsbridge(t, tok, "ceremony", "run", file, "--state-dir", dir); r.Code != 0 {
			t.Fatalf("neither concurrent run finished, nor did a re-run:\n%s\n%s\n%s", runs[0].Stderr, runs[1].Stderr, r.Stderr)
		}
	}
	wantExactlyOnce(t, e, tok, dir, rec, "x-data", "x-mac", "x-sign")
}

// SIGINT during a KMS call that hangs stops the import at once (the call
// is cancelled; its outcome is unknown), with an "interrupted" entry in
// the record and exit code 4; running the same command again finishes.
func TestExactlyOnceSIGINTDuringAHangingCall(t *testing.T) {
	e := startEmulator(t)
	tok := newTokenLocked(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "record.jsonl")
	args := []string{"import", "--endpoint-url", e.URL, "--token-label", tok.Label, "--key-label", "k", "--generate",
		"--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--no-expiry",
		"--kms-timeout", "10m", "--state-dir", dir, "--record", rec}
	var out struct{ FaultId int }
	e.raw(t, "KmsBridgeInjectFault", map[string]any{"Operation": "CreateKey", "Fault": "Hang", "HangMillis": 600000}, &out)

	cmd := exec.Command(filepath.Join(binDir, "kmsbridge"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule,
		"KMSBRIDGE_PIN=" + softhsm.TestPIN, tok.Environ()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the CreateKey is hanging in the emulator, then interrupt.
	for e.calls(t)["CreateKey"] == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Fatalf("after SIGINT: %v, want exit code 4\n%s", err, stderr.String())
	}
	msg := stderr.String()
	for _, want := range []string{"interrupted", "may have reached KMS", "To finish"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the interrupted run's message lacks %q:\n%s", want, msg)
		}
	}
	if b, _ := os.ReadFile(rec); !strings.Contains(string(b), `"Step":"interrupted"`) {
		t.Errorf("the record has no interrupted entry:\n%s", b)
	}
	e.raw(t, "KmsBridgeClearFaults", map[string]any{}, &struct{ Cleared int }{})
	if r := kmsbridge(t, tok, args...); r.Code != 0 {
		t.Fatalf("re-running the interrupted import: exit %d\n%s", r.Code, r.Stderr)
	}
	wantExactlyOnce(t, e, tok, dir, rec, "k")
}

// wrap killed right after it generated the HSM key: the same wrap again
// takes that key up (its journal says the label was free and it made
// it) instead of refusing the label, and the upload then links exactly
// that key.
func TestExactlyOnceWrapKilledAfterGenerate(t *testing.T) {
	for _, point := range []string{"called:C_GenerateKey", "step:" + kmsimport.StepGenerate, "intent:C_GenerateKey"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			faultLimit <- struct{}{}
			defer func() { <-faultLimit }()
			e := startEmulator(t)
			tok := newTokenLocked(t)
			dir := t.TempDir()
			bundle, wrapped, rec := filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json"), filepath.Join(dir, "r.jsonl")
			if r := kmsbridge(t, nil, "prepare", "--endpoint-url", e.URL, "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048",
				"--state-dir", dir, "--out", bundle); r.Code != 0 {
				t.Fatalf("prepare: %s", r.Stderr)
			}
			var b kmsimport.Bundle
			readJSON(t, bundle, &b)
			wrap := []string{"wrap", "--token-label", tok.Label, "--bundle", bundle, "--expect-fingerprint", b.PublicKeySha256,
				"--key-label", "w", "--generate", "--out", wrapped, "--state-dir", dir, "--record", rec}
			s := scenario{kill: point}
			if r := kmsbridge(t, tok, append(s.env(), wrap...)...); r.Code != -1 {
				t.Fatalf("the crash point did not fire: exit %d\n%s", r.Code, r.Stderr)
			}
			if r := kmsbridge(t, tok, wrap...); r.Code != 0 {
				t.Fatalf("re-running the same wrap: exit %d\n%s", r.Code, r.Stderr)
			}
			if r := kmsbridge(t, nil, "upload", "--endpoint-url", e.URL, "--wrapped", wrapped, "--bundle", bundle, "--no-expiry", "--state-dir", dir); r.Code != 0 {
				t.Fatalf("upload: exit %d\n%s", r.Code, r.Stderr)
			}
			wantExactlyOnce(t, e, tok, dir, rec, "w")
		})
	}
}
