package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// The exactly-once suite of rotate: a SIGKILL after every step a
// fault-free rotation passes, around every change it journals, after the
// rotation's intent is durable and after the report is written; then the
// same rotate again (by the same name, or by another: the key id or ARN
// instead of the alias), and once more. The end state must be the one
// uninterrupted run leaves: the HSM holds the old and exactly one new
// generation; KMS holds one key whose new material is CURRENT (on demand,
// in every Region of a multi-Region key), or the old key and exactly one
// successor with the alias moved and both keys tagged (manual); the
// journal holds exactly one rotation, closed; the record verifies. The
// second run must say it finished the rotation started earlier, and the
// third that it changed nothing.

// rotateKind is one kind of rotation the suite kills.
type rotateKind struct {
	name     string
	spec     string
	manual   bool
	replicas int
	// rename lists kill points after which the re-run names the key
	// otherwise ("id" or "arn") than the first run (alias/k).
	rename map[string]string
}

// rotateSteps are the steps of rotate (and of the import flow a manual
// rotation runs), where the crash points are.
var rotateSteps = map[string]bool{
	awskms.StepValidate: true, awskms.StepSelectKey: true, awskms.StepProbe: true, awskms.StepCheckKMS: true,
	awskms.StepGenerate: true, awskms.StepCreateKey: true, awskms.StepGetParameters: true, awskms.StepWrap: true,
	awskms.StepImport: true, awskms.StepAlias: true, awskms.StepVerify: true,
	awskms.StepRotateCheck: true, awskms.StepOpenRotation: true, awskms.StepTagRotating: true, awskms.StepReplicas: true,
	awskms.StepRotateOnDmd: true, awskms.StepWaitRotation: true, awskms.StepTagMaterial: true, awskms.StepMoveAlias: true,
	awskms.StepTagRotatedKey: true, awskms.StepUntagRotating: true, awskms.StepCloseRotation: true,
}

func TestExactlyOnceRotateOnDemand(t *testing.T) {
	t.Parallel()
	rotateSuite(t, rotateKind{name: "on-demand", spec: "SYMMETRIC_DEFAULT", rename: map[string]string{
		"step:" + awskms.StepUntagRotating: "arn", "called:UntagResource": "id", "step:" + awskms.StepCloseRotation: "id",
	}})
}

func TestExactlyOnceRotateManual(t *testing.T) {
	t.Parallel()
	rotateSuite(t, rotateKind{name: "manual", spec: "HMAC_256", manual: true, rename: map[string]string{
		"called:UpdateAlias": "id", "step:" + awskms.StepMoveAlias: "id", "step:" + awskms.StepTagRotatedKey + "#2": "id",
		"step:" + awskms.StepCloseRotation: "id", "reported:rotate": "id", "intent:UpdateAlias": "arn",
	}})
}

func TestExactlyOnceRotateMultiRegion(t *testing.T) {
	t.Parallel()
	rotateSuite(t, rotateKind{name: "multi-region", spec: "SYMMETRIC_DEFAULT", replicas: 2, rename: map[string]string{
		"step:" + awskms.StepUntagRotating: "arn",
	}})
}

// rotateFixture is one scenario's world: its Region, token, state
// directory, record and the imported key.
type rotateFixture struct {
	sc       *scope
	tok      *softhsm.Token
	dir, rec string
	key      awskms.Result
	replicas []string
}

// setupRotate imports the key "k" (alias/k) of kind in a fresh Region of
// e, with a token and state directory of its own.
func setupRotate(t *testing.T, e *emulator, kind rotateKind) rotateFixture {
	scopes := newScopes(t, e, 1+kind.replicas)
	f := rotateFixture{sc: scopes[0], tok: newToken(t), dir: t.TempDir()}
	f.rec = f.dir + "/record.jsonl"
	args := []string{f.sc.env(), "import", "--output", "json", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--token-label", f.tok.Label, "--key-label", "k",
		"--generate", "--key-spec", kind.spec, "--alias", "alias/k", "--wrapping-key-spec", "RSA_2048", "--no-expiry", "--state-dir", f.dir}
	if kind.replicas > 0 {
		args = append(args, "--multi-region")
	}
	for i := 1; i <= kind.replicas; i++ {
		f.replicas = append(f.replicas, scopes[i].Region)
		args = append(args, "--replica-region", f.replicas[i-1])
	}
	r := kmsbridge(t, f.tok, args...)
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &f.key) != nil {
		t.Fatalf("import: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	return f
}

// rotateArgs is the rotate of f's key, named name.
func (f rotateFixture) rotateArgs(name string) []string {
	args := []string{f.sc.env(), "rotate", "--endpoint-url", f.sc.URL, "--allow-endpoint", f.sc.URL, "--token-label", f.tok.Label, "--kms-key-id", name, "--no-expiry",
		"--wrapping-key-spec", "RSA_2048", "--kms-timeout", noHangKMSTimeout, "--state-dir", f.dir, "--record", f.rec}
	for _, r := range f.replicas {
		args = append(args, "--replica-region", r)
	}
	return args
}

func rotateSuite(t *testing.T, kind rotateKind) {
	e := suiteEmulator(t, "--rotation-delay", "200ms")
	setup := func(t *testing.T) rotateFixture { return setupRotate(t, e, kind) }
	rotateArgs := func(f rotateFixture, name string) []string { return f.rotateArgs(name) }
	var steps, changes map[string]int
	{
		f := setup(t)
		before := intents(t, f.dir)
		if r := kmsbridge(t, f.tok, rotateArgs(f, "alias/k")...); r.Code != 0 || !strings.Contains(r.Stdout, "Rotation complete") {
			t.Fatalf("baseline rotate: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		steps = rotateStepCounts(t, f.rec)
		changes = since(before, intents(t, f.dir))
		checkRotatedOnce(t, kind, f)
		again := kmsbridge(t, f.tok, rotateArgs(f, "alias/k")...)
		if again.Code != 0 || !strings.Contains(again.Stdout, "Already rotated") || !strings.Contains(again.Stdout, "--new-rotation") {
			t.Fatalf("the same rotate after a finished one: exit %d, want 0 and \"Already rotated ... --new-rotation\"\n%s\n%s", again.Code, again.Stdout, again.Stderr)
		}
		checkRotatedOnce(t, kind, f)
	}
	delete(changes, awskms.OpRotation)
	if steps[awskms.StepCloseRotation] != 1 || steps[awskms.StepOpenRotation] != 1 {
		t.Fatalf("a fault-free rotation passed the steps %v: no open-rotation and close-rotation", steps)
	}
	scenarios := killScenarios(kind.name, steps, changes)
	for _, p := range []string{"intent:" + awskms.OpRotation, "reported:rotate"} {
		scenarios = append(scenarios, scenario{name: kind.name + "/kill/" + p, phase: kind.name, kill: p})
	}
	// renamed: scenario name -> how its re-run names the key.
	renamed := map[string]string{}
	for _, p := range slices.Sorted(maps.Keys(kind.rename)) {
		s := scenario{name: kind.name + "/kill/" + p + "/then-by-" + kind.rename[p], phase: kind.name, kill: p}
		renamed[s.name] = kind.rename[p]
		scenarios = append(scenarios, s)
	}
	t.Logf("a fault-free %s rotation passes the steps %v and journals the changes %v: %d scenarios", kind.name, steps, changes, len(scenarios))
	runScenarios(t, scenarios, func(t *testing.T, s scenario) {
		f := setup(t)
		first := kmsbridge(t, f.tok, append(s.env(), rotateArgs(f, "alias/k")...)...)
		if first.Code != -1 {
			t.Fatalf("crash point %s did not fire: exit %d\n%s", s.kill, first.Code, tail(first.Stderr, 8))
		}
		name := "alias/k"
		switch renamed[s.name] {
		case "id":
			name = f.key.KeyId
		case "arn":
			name = f.key.Arn
		}
		again := kmsbridge(t, f.tok, rotateArgs(f, name)...)
		if again.Code != 0 {
			t.Fatalf("re-running the same rotate (--kms-key-id %s) after a kill at %s: exit %d\n%s\n%s", name, s.kill, again.Code, again.Stdout, again.Stderr)
		}
		want := "Finished the rotation started at"
		switch s.kill {
		case "step:" + awskms.StepValidate, "step:" + awskms.StepRotateCheck:
			want = "Rotation complete" // killed before the rotation began
		case "step:" + awskms.StepCloseRotation, "reported:rotate":
			want = "Already rotated" // killed after the rotation finished
		}
		if !strings.Contains(again.Stdout, want) {
			t.Errorf("the re-run after a kill at %s does not say %q:\n%s", s.kill, want, again.Stdout)
		}
		checkRotatedOnce(t, kind, f)
		third := kmsbridge(t, f.tok, rotateArgs(f, name)...)
		if third.Code != 0 || !strings.Contains(third.Stdout, "Already rotated") {
			t.Errorf("the same rotate once more: exit %d, want 0 and \"Already rotated\"\n%s\n%s", third.Code, third.Stdout, third.Stderr)
		}
		checkRotatedOnce(t, kind, f)
	})
}

// rotateStepCounts is how often each step of rotate passed in the record.
func rotateStepCounts(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var e struct{ Step string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("record line %q: %v", line, err)
		}
		if rotateSteps[e.Step] {
			steps[e.Step]++
		}
	}
	return steps
}

// checkRotatedOnce asserts the state one uninterrupted rotation of f's key
// leaves.
func checkRotatedOnce(t *testing.T, kind rotateKind, f rotateFixture) {
	t.Helper()
	ctx := context.Background()
	var old, gen2 *hsm.Key
	inToken(t, f.tok, func(tk *hsm.Token) {
		keys, err := tk.ListKeys()
		if err != nil {
			t.Fatal(err)
		}
		var labels []string
		for _, k := range keys {
			labels = append(labels, k.Label)
			switch k.Label {
			case "k":
				old = k
			case "k-r2":
				gen2 = k
			}
		}
		slices.Sort(labels)
		if !slices.Equal(labels, []string{"k", "k-r2"}) {
			t.Errorf("the HSM holds the keys %q, want the old and exactly one new generation [k k-r2]", labels)
		}
	})
	if old == nil || gen2 == nil {
		t.FailNow()
	}
	keys := allKeys(t, f.sc)
	target, err := awskms.AliasTarget(ctx, f.sc.KMS, "alias/k")
	if err != nil {
		t.Fatal(err)
	}
	if kind.manual {
		if len(keys) != 2 {
			t.Errorf("%d KMS keys, want 2: the old key and exactly one successor", len(keys))
		}
		oldKey := keys[f.key.KeyId]
		if oldKey == nil {
			t.Fatalf("the old KMS key %s is gone", f.key.KeyId)
		}
		succ := oldKey.Tags[awskms.TagRotatedTo]
		newKey := keys[succ]
		switch {
		case newKey == nil:
			t.Errorf("the old key %s is not tagged %s with its successor (tags %v): status would not show the rotation", f.key.KeyId, awskms.TagRotatedTo, oldKey.Tags)
		case newKey.Tags[awskms.TagRotatedFrom] != f.key.KeyId || newKey.Tags[awskms.TagHSMKeyID] != gen2.IDHex():
			t.Errorf("successor %s tags %v: want %s=%s and %s=%s", succ, newKey.Tags, awskms.TagRotatedFrom, f.key.KeyId, awskms.TagHSMKeyID, gen2.IDHex())
		case target != succ:
			t.Errorf("alias/k -> %s, want the successor %s", target, succ)
		}
		wantExactlyOnce(t, f.sc, f.tok, f.dir, f.rec, "k", "k-r2")
	} else {
		if len(keys) != 1 || keys[f.key.KeyId] == nil {
			t.Errorf("%d KMS keys, want only %s", len(keys), f.key.KeyId)
		}
		if target != f.key.KeyId {
			t.Errorf("alias/k -> %s, want %s", target, f.key.KeyId)
		}
		if got := f.sc.checkValue(t, f.key.KeyId); !strings.EqualFold(got, gen2.CheckValueHex()) {
			t.Errorf("KMS key's current material has check value %s, not the new generation's %s", got, gen2.CheckValueHex())
		}
		primary := wantOneRotation(t, f.sc.KMS, f.sc.Region, f.key.KeyId, gen2.IDHex(), "")
		for _, r := range f.replicas {
			c := kmsClientIn(f.sc.URL, r)
			wantOneRotation(t, c, r, f.key.KeyId, gen2.IDHex(), primary)
			if at, err := awskms.AliasTarget(ctx, c, "alias/k"); err != nil || at != f.key.KeyId {
				t.Errorf("%s: alias/k -> %s (%v), want %s", r, at, err, f.key.KeyId)
			}
		}
		verifyChain(t, f.rec) // record verify --chain-only, in this process
	}
	// The journal holds exactly one rotation, closed.
	var opened, closed int
	for _, line := range strings.Split(strings.TrimSpace(readJournals(t, f.dir)), "\n") {
		var e struct{ Kind, Op, Result string }
		if json.Unmarshal([]byte(line), &e) == nil && e.Op == awskms.OpRotation {
			switch {
			case e.Kind == "intent":
				opened++
			case e.Kind == "outcome" && e.Result == "ok":
				closed++
			}
		}
	}
	if opened != 1 || closed != 1 {
		t.Errorf("the journal holds %d rotation intents, %d closed: want exactly one, closed", opened, closed)
	}
}

// wantOneRotation asserts keyID in region holds two materials, the new one
// CURRENT (the same as the primary's when primary is given), tagged with
// the new HSM key, and no rotation left marked under way; it returns the
// CURRENT material's id.
func wantOneRotation(t *testing.T, c *kms.Client, region, keyID, newHSMKey, primary string) string {
	t.Helper()
	ctx := context.Background()
	out, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(keyID), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	if err != nil {
		t.Fatalf("%s: %v", region, err)
	}
	var current []string
	for _, m := range out.Rotations {
		if m.KeyMaterialState == types.KeyMaterialStateCurrent {
			current = append(current, aws.ToString(m.KeyMaterialId))
		}
	}
	if len(out.Rotations) != 2 || len(current) != 1 {
		t.Errorf("%s: %d materials, CURRENT %v: want 2 materials, 1 CURRENT", region, len(out.Rotations), current)
		return ""
	}
	if primary != "" && current[0] != primary {
		t.Errorf("%s: CURRENT material %s, the primary's is %s", region, current[0], primary)
	}
	tags, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(keyID)})
	if err != nil {
		t.Fatal(err)
	}
	var materialTags []string
	for _, tg := range tags.Tags {
		k, v := aws.ToString(tg.TagKey), aws.ToString(tg.TagValue)
		if k == awskms.TagRotatingTo {
			t.Errorf("%s: %s=%s left behind", region, k, v)
		}
		if strings.HasPrefix(k, awskms.TagMaterialPrefix) {
			materialTags = append(materialTags, k+"="+v)
		}
	}
	if want := awskms.MaterialTag(current[0]) + "=" + newHSMKey; len(materialTags) != 1 || materialTags[0] != want {
		t.Errorf("%s: material tags %v, want only %s", region, materialTags, want)
	}
	return current[0]
}

// A manual rotation killed after UpdateAlias took effect, re-run on
// another host (no journal) by the old key's id: the key has no alias any
// more, and the re-run finds the successor by the derived label and its
// rotated-from tag, moves nothing twice, tags the old key rotated-to, and
// makes no third key.
func TestRotateManualFinishedByKeyIDWithoutTheJournal(t *testing.T) {
	t.Parallel()
	e := suiteEmulator(t)
	f := setupRotate(t, e, rotateKind{spec: "HMAC_256", manual: true})
	first := kmsbridge(t, f.tok, append([]string{killAt("called:UpdateAlias"), killGuard}, f.rotateArgs("alias/k")...)...)
	if first.Code != -1 {
		t.Fatalf("the crash point did not fire: exit %d\n%s", first.Code, first.Stderr)
	}
	f.dir = t.TempDir() // another host: no journal
	f.rec = f.dir + "/record.jsonl"
	// Without the journal the successor is not proven kmsbridge's: the
	// re-run says so and changes nothing; with --adopt it finishes.
	refused := kmsbridge(t, f.tok, f.rotateArgs(f.key.KeyId)...)
	if refused.Code != 2 || !strings.Contains(refused.Stderr, "--adopt") {
		t.Fatalf("re-running rotate by key id without the journal: exit %d, want 2 naming --adopt\n%s", refused.Code, refused.Stderr)
	}
	again := kmsbridge(t, f.tok, append(f.rotateArgs(f.key.KeyId), "--adopt")...)
	if again.Code != 0 {
		t.Fatalf("re-running rotate by key id without the journal, with --adopt: exit %d\n%s\n%s", again.Code, again.Stdout, again.Stderr)
	}
	keys := allKeys(t, f.sc)
	succ := keys[f.key.KeyId].Tags[awskms.TagRotatedTo]
	target, err := awskms.AliasTarget(context.Background(), f.sc.KMS, "alias/k")
	if len(keys) != 2 || succ == "" || keys[succ] == nil || target != succ || err != nil {
		t.Errorf("%d KMS keys, old key rotated-to %q, alias/k -> %s (%v): want 2 keys, the alias on the tagged successor", len(keys), succ, target, err)
	}
	if hsmHasLabel(t, f.tok, "k-r3") || !hsmHasLabel(t, f.tok, "k-r2") {
		t.Error("the HSM holds not exactly one new generation (k-r2)")
	}
}
