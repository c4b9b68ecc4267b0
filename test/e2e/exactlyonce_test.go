package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/awsregions"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/record"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// The exactly-once suite: every fault kind the emulator can inject at
// every KMS call a command makes (each operation's n-th call, for every n
// a fault-free run of the same command reaches), and a SIGKILL after every
// step and around every change; after the documented recovery (running the
// same command again) there is exactly one KMS key per HSM key, Enabled,
// holding that key's material, every EXTERNAL key is in the journal, the
// record verifies, and no message said nothing had changed when something
// had. The scenarios of one test share one emulator and run in parallel,
// each in a Region of its own (the emulator keeps keys, aliases, faults
// and call counters per Region), with its own token, state directory and
// record.

var faultKinds = []string{"InternalError", "Throttling", "Reset", "Hang", "LostResponse"}

// faultLimit bounds how many scenarios run at once on a shared 2-core
// machine: most of a scenario's time is spent waiting (timeouts, backoff),
// not computing.
var faultLimit = make(chan struct{}, 8)

// suiteEmulator starts the emulator a test's scenarios share, with a pool
// of RSA_2048 wrapping keys generated ahead.
func suiteEmulator(t *testing.T, args ...string) *emulator {
	return startEmulator(t, append([]string{"--wrapping-key-pool", "RSA_2048=16"}, args...)...)
}

// scope is one scenario's view of the shared emulator: its own Region.
type scope struct {
	*emulator
	Region string
	KMS    *kms.Client
}

// scenarioRegions are the Regions scenarios take, one at a time each:
// real Region names of the aws partition (kmsbridge refuses any other, and
// a multi-Region key stays in one partition), but not the emulator's
// default Region.
var scenarioRegions = func() []string {
	var out []string
	for _, p := range awsregions.Partitions {
		for _, r := range p.Regions {
			if p.ID == "aws" && r != "us-east-1" {
				out = append(out, r)
			}
		}
	}
	return out
}()

// regionPools hands out each emulator's free Regions.
var regionPools sync.Map // *emulator -> chan string

// newScope gives a scenario a Region of e of its own until t ends, when
// the emulator forgets everything of it and it is free for another
// scenario. When every Region is taken it waits for one.
func newScope(t *testing.T, e *emulator) *scope {
	return newScopes(t, e, 1)[0]
}

// newScopes is newScope for n Regions at once (a multi-Region key's).
func newScopes(t *testing.T, e *emulator, n int) []*scope {
	t.Helper()
	v, _ := regionPools.LoadOrStore(e, func() chan string {
		free := make(chan string, len(scenarioRegions))
		for _, r := range scenarioRegions {
			free <- r
		}
		return free
	}())
	free := v.(chan string)
	// One taker at a time, so two multi-Region scenarios cannot each hold
	// part of what the other needs.
	regionTake.Lock()
	defer regionTake.Unlock()
	var out []*scope
	for range n {
		r := <-free
		out = append(out, &scope{emulator: e, Region: r, KMS: kmsClientIn(e.URL, r)})
	}
	t.Cleanup(func() {
		for _, s := range out {
			e.rawRegion(t, s.Region, "KmsBridgeResetRegion", map[string]any{"Region": s.Region}, &struct{ Region string }{})
			free <- s.Region
		}
	})
	return out
}

var regionTake sync.Mutex

// home is the emulator's default Region, for tests with an emulator of
// their own.
func home(e *emulator) *scope { return &scope{emulator: e, Region: "us-east-1", KMS: e.KMS} }

// kmsClientIn is the real SDK client pointed at url, for region.
func kmsClientIn(url, region string) *kms.Client {
	return kms.New(kms.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(url),
	})
}

// env makes kmsbridge use the scope's Region.
func (s *scope) env() string { return "AWS_REGION=" + s.Region }

// rawIn calls an emulator-only operation for the scope's Region.
func (s *scope) rawIn(t *testing.T, op string, in, out any) {
	t.Helper()
	s.rawRegion(t, s.Region, op, in, out)
}

// inject arms kind at the occ-th call of op in the scope's Region, counted
// from now.
func (s *scope) inject(t *testing.T, op, kind string, occ int) {
	t.Helper()
	in := map[string]any{"Operation": op, "Fault": kind, "Occurrence": occ, "Count": 1, "Region": s.Region}
	if kind == "Hang" {
		in["HangMillis"] = hangForever
	}
	var out struct{ FaultId int }
	s.rawIn(t, "KmsBridgeInjectFault", in, &out)
}

// faultLog is what the emulator reports of the scope's faults.
type faultLog struct {
	Pending     []struct{ Operation, Region string }
	Fired       []struct{ Operation, Outcome string }
	RegionCalls map[string]map[string]int
}

func (s *scope) faults(t *testing.T) faultLog {
	t.Helper()
	var out faultLog
	s.rawIn(t, "KmsBridgeListFaults", map[string]any{}, &out)
	return out
}

// calls is how often each KMS operation was called in the scope's Region.
func (s *scope) calls(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for op, n := range s.faults(t).RegionCalls[s.Region] {
		if !strings.HasPrefix(op, "KmsBridge") {
			out[op] = n
		}
	}
	return out
}

// pending reports whether a fault armed in the scope's Region has not
// fired yet.
func (s *scope) pending(t *testing.T) bool {
	for _, p := range s.faults(t).Pending {
		if p.Region == s.Region {
			return true
		}
	}
	return false
}

func (s *scope) checkValue(t *testing.T, keyID string) string {
	var out struct{ KeyCheckValue string }
	s.rawIn(t, "KmsBridgeGetKeyCheckValue", map[string]string{"KeyId": keyID}, &out)
	return out.KeyCheckValue
}

// keyCount is how many KMS keys the scope's Region holds.
func (s *scope) keyCount(t *testing.T) int {
	t.Helper()
	out, err := s.KMS.ListKeys(context.Background(), &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Keys)
}

// (e *emulator) calls is how often each operation was called since the
// emulator started, in every Region.
func (e *emulator) calls(t *testing.T) map[string]int {
	t.Helper()
	var out struct{ Calls map[string]int }
	e.raw(t, "KmsBridgeListFaults", map[string]any{}, &out)
	return out.Calls
}

// since is the calls of after not yet in before.
func since(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for op, n := range after {
		if n > before[op] {
			out[op] = n - before[op]
		}
	}
	return out
}

// allKeys lists every KMS key of the scope with its metadata and tags.
func allKeys(t *testing.T, s *scope) map[string]*awskms.KMSKeyState {
	t.Helper()
	ctx := context.Background()
	out, err := s.KMS.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]*awskms.KMSKeyState{}
	for _, k := range out.Keys {
		st, err := awskms.DescribeKMSKey(ctx, s.KMS, aws.ToString(k.KeyId))
		if err != nil {
			t.Fatal(err)
		}
		keys[aws.ToString(k.KeyId)] = st
	}
	return keys
}

// saidNothingChanged fails the test when a run said nothing was changed
// although KMS holds a key or the token holds the label.
func saidNothingChanged(t *testing.T, r run, s *scope, tok *softhsm.Token, labels ...string) {
	t.Helper()
	if !strings.Contains(r.Stderr, "othing was changed") && !strings.Contains(r.Stderr, "nothing changed") {
		return
	}
	if n := len(allKeys(t, s)); n > 0 {
		t.Errorf("a run said nothing was changed, but KMS holds %d keys:\n%s", n, r.Stderr)
	}
	if tok == nil {
		return
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
func wantExactlyOnce(t *testing.T, s *scope, tok *softhsm.Token, stateDir, record string, labels ...string) {
	t.Helper()
	keys := allKeys(t, s)
	journal := readJournals(t, stateDir)
	for id, st := range keys {
		if st.Metadata.Origin == types.OriginTypeExternal && !strings.Contains(journal, st.Tags[awskms.TagAttempt]+`"`) || st.Tags[awskms.TagAttempt] == "" {
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
			if st.Tags[awskms.TagHSMKeyID] == k.IDHex() && st.Metadata.KeyState != types.KeyStatePendingDeletion {
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
			if got, want := s.checkValue(t, linked[0]), k.CheckValueHex(); !strings.EqualFold(got, want) {
				t.Errorf("KMS key %s check value %s, HSM key %q %s: not the same material", linked[0], got, label, want)
			}
		}
	}
	if record != "" {
		verifyChain(t, record)
	}
}

// verifyChain checks the hash chain of the record at path as `kmsbridge
// record verify --chain-only` does, with the same code (record.VerifyWith)
// in this process: the kill suites check hundreds of records, and a
// process start per record was a tenth of their CPU. The command itself is
// run by TestRecordVerifyWithoutAPublicKey and the other record tests.
func verifyChain(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if rep, err := record.VerifyWith(f, record.VerifyOptions{}); err != nil {
		t.Errorf("record verify --chain-only %s: %v\n%v", path, err, rep)
	}
}

// tail is the last n lines of s, for the log of a scenario.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// inToken opens tok in this process, logged in, for fn, and closes it.
func inToken(t *testing.T, tok *softhsm.Token, fn func(*hsm.Token)) {
	t.Helper()
	defer useTokenInProcess(tok)()
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

// stepCounts is how often each flow step passed in a record after its
// first from lines (a ceremony passes each step once per key): the step
// boundaries a SIGKILL scenario can stop at. It returns the record's line
// count too.
func stepCounts(t *testing.T, path string, from int) (map[string]int, int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, line := range lines[from:] {
		var e struct{ Step, Outcome string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("record line %q: %v", line, err)
		}
		if kmsimportSteps[e.Step] {
			steps[e.Step]++
		}
	}
	return steps, len(lines)
}

// intents is how many intents each journaled call has in the journals of
// dir: the changes a SIGKILL scenario can stop around.
func intents(t *testing.T, dir string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(readJournals(t, dir)), "\n") {
		var e struct{ Kind, Op string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Kind == "intent" {
			out[e.Op]++
		}
	}
	return out
}

// kmsimportSteps are the steps of the import flows, which is where the
// crash points are.
var kmsimportSteps = map[string]bool{
	awskms.StepValidate: true, awskms.StepSelectKey: true, awskms.StepProbe: true, awskms.StepCheckKMS: true,
	awskms.StepGenerate: true, awskms.StepCreateKey: true, awskms.StepGetParameters: true, awskms.StepWrap: true,
	awskms.StepImport: true, awskms.StepAlias: true, awskms.StepVerify: true, awskms.StepApproval: true,
	awskms.StepEvidence: true,
}

// scenario is one fault or crash and the command (phase) it hits.
type scenario struct {
	name  string
	phase string // the command of a multi-command test it hits
	op    string // the faulted operation, or ""
	kind  string
	occ   int    // the op's occ-th call from the start of the phase
	kill  string // kmsimport crash point, or ""
}

func (s scenario) env() []string {
	if s.kill == "" {
		return nil
	}
	return []string{kmsimport.EnvTestKillAt + "=" + s.kill, kmsimport.EnvTestKillGuard + "=" + kmsimport.TestKillGuard}
}

// faultScenarios is every fault kind at every call of calls (operation:
// how many times a fault-free run of phase calls it).
func faultScenarios(phase string, calls map[string]int) []scenario {
	var out []scenario
	ops := slices.Sorted(maps.Keys(calls))
	for _, op := range ops {
		for occ := 1; occ <= calls[op]; occ++ {
			for _, k := range faultKinds {
				out = append(out, scenario{name: fmt.Sprintf("%s/%s-call%d/%s", phase, op, occ, k), phase: phase, op: op, kind: k, occ: occ})
			}
		}
	}
	return out
}

// killScenarios is a SIGKILL after every passage of every step and
// around every journaled change (op: how many intents a fault-free run
// writes).
func killScenarios(phase string, steps, changes map[string]int) []scenario {
	var out []scenario
	add := func(point string, n int) {
		name, at := point, point
		if n > 1 {
			name, at = fmt.Sprintf("%s-%d", point, n), fmt.Sprintf("%s#%d", point, n)
		}
		out = append(out, scenario{name: phase + "/kill/" + name, phase: phase, kill: at})
	}
	for _, st := range slices.Sorted(maps.Keys(steps)) {
		for n := 1; n <= steps[st]; n++ {
			add("step:"+st, n)
		}
	}
	for _, op := range slices.Sorted(maps.Keys(changes)) {
		for n := 1; n <= changes[op]; n++ {
			add("intent:"+op, n)
			add("called:"+op, n)
		}
	}
	return out
}

// arm injects s's fault into sc when s hits phase, and returns the
// environment of s's crash point for phase.
func (s scenario) arm(t *testing.T, sc *scope, phase string) []string {
	if s.phase != phase {
		return []string{sc.env()}
	}
	if s.op != "" {
		sc.inject(t, s.op, s.kind, s.occ)
	}
	return append([]string{sc.env()}, s.env()...)
}

// checkFired fails the scenario when its fault or crash did not happen in
// the run r of phase, since it then proved nothing.
func (s scenario) checkFired(t *testing.T, sc *scope, phase string, r run) {
	t.Helper()
	if s.phase != phase {
		return
	}
	if s.kill != "" && r.Code != -1 {
		t.Errorf("crash point %s did not fire: exit %d\n%s", s.kill, r.Code, tail(r.Stderr, 8))
	}
	if s.op != "" && sc.pending(t) {
		t.Errorf("the fault %s at call %d of %s did not fire: the run made fewer calls than the fault-free one\n%s", s.kind, s.occ, s.op, tail(r.Stderr, 8))
	}
}

// runScenarios runs the scenarios cap(faultLimit) at a time, each in a
// subtest of its own. The subtests are started from goroutines rather than
// marked t.Parallel: go test runs at most -parallel (GOMAXPROCS, 2 here)
// parallel subtests at once, and a scenario spends most of its time
// waiting on timeouts and backoff, not on the CPU.
func runScenarios(t *testing.T, scenarios []scenario, fn func(t *testing.T, s scenario)) {
	var faults, kills atomic.Int64
	start := time.Now()
	t.Run("scenarios", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, s := range scenarios {
			wg.Add(1)
			faultLimit <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-faultLimit }()
				t.Run(s.name, func(t *testing.T) {
					if s.kill != "" {
						kills.Add(1)
					} else {
						faults.Add(1)
					}
					fn(t, s)
				})
			}()
		}
		wg.Wait()
	})
	fmt.Printf("%s: %d scenarios ran (%d faults at every KMS call, %d SIGKILLs at every step and change) in %s\n",
		t.Name(), faults.Load()+kills.Load(), faults.Load(), kills.Load(), time.Since(start).Round(time.Second))
}

func TestExactlyOnceImport(t *testing.T) {
	t.Parallel()
	e := suiteEmulator(t)
	timeout := noHangKMSTimeout // for the baseline; the scenarios' is scaled to it
	importArgs := func(tok *softhsm.Token, state, rec string) []string {
		return []string{"import", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--token-label", tok.Label, "--key-label", "k", "--generate",
			"--alias", "alias/k", "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--no-expiry",
			"--kms-timeout", timeout, "--state-dir", state, "--record", rec}
	}
	var calls, steps, changes map[string]int
	{
		sc := newScope(t, e)
		tok := newToken(t)
		dir := t.TempDir()
		rec := filepath.Join(dir, "r.jsonl")
		r := kmsbridge(t, tok, append([]string{sc.env()}, importArgs(tok, dir, rec)...)...)
		if r.Code != 0 {
			t.Fatalf("baseline import: exit %d\n%s", r.Code, r.Stderr)
		}
		timeout = hangKMSTimeout(r.Took)
		calls, changes = sc.calls(t), intents(t, dir)
		steps, _ = stepCounts(t, rec, 0)
	}
	for _, want := range []string{"CreateKey", "ImportKeyMaterial", "CreateAlias", "GetParametersForImport"} {
		if calls[want] == 0 {
			t.Fatalf("baseline import called %v, not %s", calls, want)
		}
	}
	t.Logf("a fault-free import calls %v; its steps: %v; its changes: %v; the scenarios' --kms-timeout: %s", calls, steps, changes, timeout)
	scenarios := append(faultScenarios("import", calls), killScenarios("import", steps, changes)...)
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		sc := newScope(t, e)
		tok := newToken(t)
		dir := t.TempDir()
		rec := filepath.Join(dir, "record.jsonl")
		args := importArgs(tok, dir, rec)
		first := kmsbridge(t, tok, append(s.arm(t, sc, "import"), args...)...)
		t.Logf("first run: exit %d\n%s", first.Code, tail(first.Stderr, 8))
		s.checkFired(t, sc, "import", first)
		saidNothingChanged(t, first, sc, tok, "k")
		if first.Code != 0 {
			if s.kill == "" && !strings.Contains(first.Stderr, "To finish") && !strings.Contains(first.Stderr, "othing was changed") {
				t.Errorf("a failed run says neither what exists and how to finish, nor that nothing changed:\n%s", first.Stderr)
			}
			again := kmsbridge(t, tok, append([]string{sc.env()}, args...)...)
			if again.Code != 0 {
				t.Fatalf("re-running the same import did not finish the job: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, first.Stderr, again.Stderr)
			}
		}
		wantExactlyOnce(t, sc, tok, dir, rec, "k")
	})
}

// TestExactlyOnceSplit runs prepare, wrap and upload, with each fault at
// each KMS call of prepare and of upload, and a SIGKILL after each step
// and around each change of all three.
func TestExactlyOnceSplit(t *testing.T) {
	t.Parallel()
	e := suiteEmulator(t)
	// The baselines' --kms-timeout; the scenarios' are scaled to them.
	prepTimeout, upTimeout := noHangKMSTimeout, noHangKMSTimeout
	type files struct{ dir, bundle, wrapped, rec string }
	newFiles := func(t *testing.T) files {
		dir := t.TempDir()
		return files{dir, filepath.Join(dir, "b.json"), filepath.Join(dir, "w.json"), filepath.Join(dir, "r.jsonl")}
	}
	prepareArgs := func(f files) []string {
		return []string{"prepare", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--alias", "alias/s", "--wrapping-algorithm", "RSAES_OAEP_SHA_1",
			"--wrapping-key-spec", "RSA_2048", "--kms-timeout", prepTimeout, "--state-dir", f.dir, "--record", f.rec, "--out", f.bundle}
	}
	uploadArgs := func(f files) []string {
		return []string{"upload", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--wrapped", f.wrapped, "--bundle", f.bundle, "--no-expiry", "--allow-unsigned",
			"--kms-timeout", upTimeout, "--state-dir", f.dir, "--record", f.rec}
	}
	wrapArgs := func(t *testing.T, tok *softhsm.Token, f files) []string {
		var b kmsimport.Bundle
		readJSON(t, f.bundle, &b)
		return []string{"wrap", "--allow-endpoint", e.URL, "--token-label", tok.Label, "--bundle", f.bundle, "--expect-fingerprint", b.PublicKeySha256,
			"--key-label", "s", "--generate", "--out", f.wrapped, "--state-dir", f.dir, "--record", f.rec}
	}
	var prepCalls, upCalls, prepSteps, wrapSteps, upSteps, prepChanges, wrapChanges, upChanges map[string]int
	{
		sc := newScope(t, e)
		tok := newToken(t)
		f := newFiles(t)
		r := kmsbridge(t, nil, append([]string{sc.env()}, prepareArgs(f)...)...)
		if r.Code != 0 {
			t.Fatalf("baseline prepare: exit %d\n%s", r.Code, r.Stderr)
		}
		prepTook := r.Took
		prepCalls, prepChanges = sc.calls(t), intents(t, f.dir)
		var n int
		prepSteps, n = stepCounts(t, f.rec, 0)
		if r := kmsbridge(t, tok, wrapArgs(t, tok, f)...); r.Code != 0 {
			t.Fatalf("baseline wrap: exit %d\n%s", r.Code, r.Stderr)
		}
		wrapSteps, n = stepCounts(t, f.rec, n)
		afterWrap := intents(t, f.dir)
		wrapChanges = since(prepChanges, afterWrap)
		r = kmsbridge(t, nil, append([]string{sc.env()}, uploadArgs(f)...)...)
		if r.Code != 0 {
			t.Fatalf("baseline upload: exit %d\n%s", r.Code, r.Stderr)
		}
		prepTimeout, upTimeout = hangKMSTimeout(prepTook), hangKMSTimeout(r.Took)
		upCalls = since(prepCalls, sc.calls(t))
		upSteps, _ = stepCounts(t, f.rec, n)
		upChanges = since(afterWrap, intents(t, f.dir))
	}
	t.Logf("a fault-free prepare calls %v, upload %v; steps: prepare %v, wrap %v, upload %v; changes: prepare %v, wrap %v, upload %v; the scenarios' --kms-timeout: prepare %s, upload %s",
		prepCalls, upCalls, prepSteps, wrapSteps, upSteps, prepChanges, wrapChanges, upChanges, prepTimeout, upTimeout)
	scenarios := append(faultScenarios("prepare", prepCalls), faultScenarios("upload", upCalls)...)
	scenarios = append(scenarios, killScenarios("prepare", prepSteps, prepChanges)...)
	scenarios = append(scenarios, killScenarios("wrap", wrapSteps, wrapChanges)...)
	scenarios = append(scenarios, killScenarios("upload", upSteps, upChanges)...)
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		sc := newScope(t, e)
		tok := newToken(t)
		f := newFiles(t)
		r := kmsbridge(t, nil, append(s.arm(t, sc, "prepare"), prepareArgs(f)...)...)
		s.checkFired(t, sc, "prepare", r)
		saidNothingChanged(t, r, sc, nil)
		if r.Code != 0 {
			if r = kmsbridge(t, nil, append([]string{sc.env()}, prepareArgs(f)...)...); r.Code != 0 {
				t.Fatalf("re-running the same prepare did not finish: exit %d\n%s", r.Code, r.Stderr)
			}
		}
		if n := len(allKeys(t, sc)); n != 1 {
			t.Fatalf("after prepare and its recovery KMS holds %d keys, want 1", n)
		}
		wrap := wrapArgs(t, tok, f)
		r = kmsbridge(t, tok, append(s.arm(t, sc, "wrap"), wrap...)...)
		s.checkFired(t, sc, "wrap", r)
		if r.Code != 0 {
			if again := kmsbridge(t, tok, wrap...); again.Code != 0 {
				t.Fatalf("re-running the same wrap did not finish: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, r.Stderr, again.Stderr)
			}
		}
		r = kmsbridge(t, nil, append(s.arm(t, sc, "upload"), uploadArgs(f)...)...)
		s.checkFired(t, sc, "upload", r)
		if r.Code != 0 {
			if strings.Contains(r.Stderr, "kmsbridge import") {
				t.Errorf("upload's failure gives import's advice:\n%s", r.Stderr)
			}
			if again := kmsbridge(t, nil, append([]string{sc.env()}, uploadArgs(f)...)...); again.Code != 0 {
				t.Fatalf("re-running the same upload did not finish: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, r.Stderr, again.Stderr)
			}
		}
		wantExactlyOnce(t, sc, tok, f.dir, f.rec, "s")
	})
}

func TestExactlyOnceDeleteMaterial(t *testing.T) {
	t.Parallel()
	e := suiteEmulator(t)
	setup := func(t *testing.T) (*scope, *softhsm.Token, string, string) {
		sc := newScope(t, e)
		tok := newToken(t)
		dir := t.TempDir()
		res := importJSON(t, tok, "--region", sc.Region, "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--token-label", tok.Label, "--key-label", "d", "--generate",
			"--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048", "--no-expiry", "--state-dir", dir)
		return sc, tok, dir, res.KeyId
	}
	timeout := noHangKMSTimeout // for the baseline; the scenarios' is scaled to it
	deleteArgs := func(dir, id, rec string) []string {
		return []string{"delete-material", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--kms-key-id", id, "--yes", "--kms-timeout", timeout, "--state-dir", dir, "--record", rec}
	}
	var calls, steps, changes map[string]int
	{
		sc, _, dir, id := setup(t)
		before, beforeChanges := sc.calls(t), intents(t, dir)
		rec := filepath.Join(dir, "r.jsonl")
		r := kmsbridge(t, nil, append([]string{sc.env()}, deleteArgs(dir, id, rec)...)...)
		if r.Code != 0 {
			t.Fatalf("baseline delete-material: exit %d\n%s", r.Code, r.Stderr)
		}
		timeout = hangKMSTimeout(r.Took)
		calls, changes = since(before, sc.calls(t)), since(beforeChanges, intents(t, dir))
		steps, _ = stepCounts(t, rec, 0)
	}
	t.Logf("a fault-free delete-material calls %v; its steps: %v; its changes: %v; the scenarios' --kms-timeout: %s", calls, steps, changes, timeout)
	scenarios := append(faultScenarios("delete-material", calls), killScenarios("delete-material", steps, changes)...)
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		sc, _, dir, id := setup(t)
		rec := filepath.Join(dir, "record.jsonl")
		args := deleteArgs(dir, id, rec)
		r := kmsbridge(t, nil, append(s.arm(t, sc, "delete-material"), args...)...)
		s.checkFired(t, sc, "delete-material", r)
		if r.Code != 0 {
			if again := kmsbridge(t, nil, append([]string{sc.env()}, args...)...); again.Code != 0 {
				t.Fatalf("re-running the same delete-material did not finish: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, r.Stderr, again.Stderr)
			}
		}
		keys := allKeys(t, sc)
		if len(keys) != 1 || keys[id] == nil || keys[id].Metadata.KeyState != types.KeyStatePendingImport {
			t.Errorf("after delete-material and its recovery: %d keys, key %s state %v, want one key, PendingImport", len(keys), id, keys[id])
		}
		verifyChain(t, rec)
	})
}

// ceremony3 is the three-key ceremony of the suite: symmetric, HMAC, EC.
func ceremony3(t *testing.T, dir, endpoint, region, record string, tok *softhsm.Token) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n", tok.Module, tok.Label)
	fmt.Fprintf(&b, "kms:\n  region: %s\n  endpoint: %[2]s\n  allow-endpoint: %[2]s\nrecord: %s\n", region, endpoint, record)
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
	t.Parallel()
	labels := []string{"x-data", "x-mac", "x-sign"}
	e := suiteEmulator(t, "--lenient-pkcs8-padding")
	var timeout string // the scenarios' --kms-timeout, scaled to the baseline
	var calls, steps, changes map[string]int
	{
		sc := newScope(t, e)
		tok := newToken(t)
		dir := t.TempDir()
		rec := filepath.Join(dir, "r.jsonl")
		file := ceremony3(t, dir, e.URL, sc.Region, rec, tok)
		r := kmsbridge(t, tok, "ceremony", "run", file, "--state-dir", dir, "--kms-timeout", noHangKMSTimeout)
		if r.Code != 0 {
			t.Fatalf("baseline ceremony: exit %d\n%s", r.Code, r.Stderr)
		}
		timeout = hangKMSTimeout(r.Took)
		calls, changes = sc.calls(t), intents(t, dir)
		steps, _ = stepCounts(t, rec, 0)
	}
	t.Logf("a fault-free three-key ceremony calls %v; its steps: %v; its changes: %v; the scenarios' --kms-timeout: %s", calls, steps, changes, timeout)
	scenarios := append(faultScenarios("ceremony", calls), killScenarios("ceremony", steps, changes)...)
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		sc := newScope(t, e)
		tok := newToken(t)
		dir := t.TempDir()
		rec := filepath.Join(dir, "record.jsonl")
		file := ceremony3(t, dir, e.URL, sc.Region, rec, tok)
		args := []string{"ceremony", "run", file, "--state-dir", dir, "--kms-timeout", timeout}
		first := kmsbridge(t, tok, append(s.arm(t, sc, "ceremony"), args...)...)
		s.checkFired(t, sc, "ceremony", first)
		saidNothingChanged(t, first, sc, tok, labels...)
		if first.Code != 0 {
			if again := kmsbridge(t, tok, args...); again.Code != 0 {
				t.Fatalf("re-running the same ceremony did not finish: exit %d\nfirst:\n%s\nagain:\n%s", again.Code, first.Stderr, again.Stderr)
			}
		}
		wantExactlyOnce(t, sc, tok, dir, rec, labels...)
		// wantExactlyOnce compares the symmetric key's check value; the
		// HMAC and EC keys' material is proved the same by what `kmsbridge
		// verify` does (a MAC and a signature made in the HSM, checked by
		// KMS), with its code (awskms.VerifyKey) run in this process: two
		// processes a scenario were a large part of this test's CPU. The
		// verify command itself runs in TestEveryGenerationReimportsByItsOwnMaterialId,
		// TestKeyAgreementKeyImportsAndVerifies and TestKeySelectionIsExact.
		inToken(t, tok, func(tk *hsm.Token) {
			for _, l := range labels[1:] {
				if _, err := awskms.VerifyKey(context.Background(), sc.KMS, tk, "alias/"+l, hsm.KeySelector{Label: l}); err != nil {
					t.Errorf("verify %s: %v", l, err)
				}
			}
		})
	})
}

// Two ceremony runs of one file at once: one refuses (the record is
// locked) or waits, and neither creates anything twice.
func TestExactlyOnceConcurrentCeremonies(t *testing.T) {
	t.Parallel()
	e := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "record.jsonl")
	file := ceremony3(t, dir, e.URL, "us-east-1", rec, tok)
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
	wantExactlyOnce(t, home(e), tok, dir, rec, "x-data", "x-mac", "x-sign")
}

// SIGINT during a KMS call that hangs stops the import at once (the call
// is cancelled; its outcome is unknown), with an "interrupted" entry in
// the record and exit code 4; running the same command again finishes.
func TestExactlyOnceSIGINTDuringAHangingCall(t *testing.T) {
	t.Parallel()
	e := startEmulator(t)
	tok := newToken(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "record.jsonl")
	args := []string{"import", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--token-label", tok.Label, "--key-label", "k", "--generate",
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
	waitUntil(t, "the CreateKey to reach the emulator", 2*time.Minute, func() bool { return e.calls(t)["CreateKey"] > 0 })
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
	wantExactlyOnce(t, home(e), tok, dir, rec, "k")
}
