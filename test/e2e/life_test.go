package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// Exit codes of status, as README documents them.
const (
	exitOK       = 0
	exitExpiring = 6
	exitBroken   = 7
)

// lifeArgs are the flags every life-cycle command here shares, the state
// directory included: the runs are one host's, whose journal shows the
// ownership authority which KMS keys kmsbridge made.
func lifeArgs(emu *emulator, tok *softhsm.Token) []string {
	return []string{"--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048", "--state-dir", filepath.Join(filepath.Dir(tok.Conf), "state")}
}

func statusJSON(t *testing.T, tok *softhsm.Token, args ...string) (awskms.Status, run) {
	t.Helper()
	r := kmsbridge(t, tok, append([]string{"status", "--output", "json"}, args...)...)
	var st awskms.Status
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("status --output json (exit %d) printed no JSON: %v\n%s\n%s", r.Code, err, r.Stdout, r.Stderr)
	}
	return st, r
}

func problemKinds(st awskms.Status) map[string]int {
	m := map[string]int{}
	for _, p := range st.Problems {
		m[p.Kind]++
	}
	return m
}

func materials(t *testing.T, emu *emulator, keyID string) []types.RotationsListEntry {
	t.Helper()
	out, err := emu.KMS.ListKeyRotations(context.Background(), &kms.ListKeyRotationsInput{KeyId: aws.String(keyID), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	if err != nil {
		t.Fatal(err)
	}
	return out.Rotations
}

func encrypt(t *testing.T, c *kms.Client, keyID, msg string) []byte {
	t.Helper()
	out, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte(msg)})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out.CiphertextBlob
}

func decryptsTo(t *testing.T, c *kms.Client, ct []byte, want string) string {
	t.Helper()
	out, err := c.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: ct})
	if err != nil {
		t.Fatalf("Decrypt of %q's ciphertext: %v", want, err)
	}
	if string(out.Plaintext) != want {
		t.Fatalf("Decrypt gave %q, want %q", out.Plaintext, want)
	}
	return aws.ToString(out.KeyMaterialId)
}

// killAt and killGuard make kmsbridge SIGKILL itself at a crash point.
func killAt(point string) string { return kmsimport.EnvTestKillAt + "=" + point }

var killGuard = kmsimport.EnvTestKillGuard + "=" + kmsimport.TestKillGuard

// hsmHasLabel asks kmsbridge status --no-kms whether the token holds a
// key labelled label (opening the module in this process more than once a
// test is not possible).
func hsmHasLabel(t *testing.T, tok *softhsm.Token, label string) bool {
	t.Helper()
	st, r := statusJSON(t, tok, "--token-label", tok.Label, "--no-kms")
	if r.Code != exitOK {
		t.Fatalf("status --no-kms: exit %d\n%s", r.Code, r.Stderr)
	}
	for _, h := range st.HSMKeys {
		if h.Label == label {
			return true
		}
	}
	return false
}

// TestLifeOfImportedMaterial runs renew, rotate and status on one token
// and one emulator, as an operator would over the years.
func TestLifeOfImportedMaterial(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--rotation-delay", "1s")
	tok := newToken(t)
	common := lifeArgs(emu, tok)
	rec := filepath.Join(t.TempDir(), "record.jsonl")
	data := importJSON(t, tok, append(common, "--key-label", "data-2026", "--generate", "--alias", "alias/data", "--valid-to", validTo(10*24*time.Hour))...)
	ct0 := encrypt(t, emu.KMS, data.KeyId, "generation 1")

	t.Run("status says expiring soon", func(t *testing.T) {
		st, r := statusJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--warn-days", "30")
		if r.Code != exitExpiring || st.Health != awskms.HealthExpiring || problemKinds(st)[awskms.ProblemExpiring] != 1 {
			t.Fatalf("exit %d, health %s, problems %+v", r.Code, st.Health, st.Problems)
		}
		if _, r := statusJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--warn-days", "5"); r.Code != exitOK {
			t.Errorf("--warn-days 5 with 9 days left: exit %d, want 0", r.Code)
		}
	})

	t.Run("renew before expiry", func(t *testing.T) {
		before := materials(t, emu, data.KeyId)[0].ValidTo
		r := kmsbridge(t, tok, append([]string{"renew", "--within", "30", "--dry-run"}, common...)...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "would-renew") || !materials(t, emu, data.KeyId)[0].ValidTo.Equal(*before) {
			t.Fatalf("dry run: exit %d, changed ValidTo?\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		r = kmsbridge(t, tok, append([]string{"renew", "--within", "30", "--record", rec, "--output", "json"}, common...)...)
		var res awskms.RenewResult
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &res) != nil || res.Renewed != 1 {
			t.Fatalf("renew: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		after := materials(t, emu, data.KeyId)[0]
		if after.ValidTo == nil || after.ValidTo.Sub(time.Now()) < 360*24*time.Hour || aws.ToString(after.KeyMaterialId) != data.KeyMaterialId {
			t.Errorf("after renew: material %s valid to %v, want the same material valid about a year", aws.ToString(after.KeyMaterialId), after.ValidTo)
		}
		if !recordHas(t, rec, `"Command":"renew"`, `"Step":"import"`) || !recordHas(t, rec, `"Step":"verify"`) {
			t.Error("the record lacks renew's import or verify step")
		}
		// Cron-safe: the next run touches nothing.
		arts, _ := filepath.Glob(filepath.Join(emu.Artifacts, "import-*.json"))
		r = kmsbridge(t, tok, append([]string{"renew", "--within", "30"}, common...)...)
		arts2, _ := filepath.Glob(filepath.Join(emu.Artifacts, "import-*.json"))
		if r.Code != 0 || !strings.Contains(r.Stdout, "Nothing to renew") || len(arts2) != len(arts) {
			t.Errorf("second renew: exit %d, imports %d -> %d\n%s", r.Code, len(arts), len(arts2), r.Stdout)
		}
	})

	t.Run("renew after expiry", func(t *testing.T) {
		short := importJSON(t, tok, append(common, "--key-label", "short-2026", "--generate", "--valid-to", validTo(2*24*time.Hour))...)
		ct := encrypt(t, emu.KMS, short.KeyId, "before expiry")
		emu.advance(t, 3*24*time.Hour)
		if s := keyState(t, emu, short.KeyId); s != types.KeyStatePendingImport {
			t.Fatalf("after expiry the key is %s, want PendingImport", s)
		}
		st, r := statusJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label)
		if r.Code != exitBroken || problemKinds(st)[awskms.ProblemPendingImport] != 1 {
			t.Fatalf("status of an expired key: exit %d, problems %+v", r.Code, st.Problems)
		}
		r = kmsbridge(t, tok, append([]string{"renew", "--kms-key-id", short.KeyId, "--record", rec}, common...)...)
		if r.Code != 0 || keyState(t, emu, short.KeyId) != types.KeyStateEnabled {
			t.Fatalf("renew of the expired key: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		decryptsTo(t, emu.KMS, ct, "before expiry")
	})

	t.Run("rotate a symmetric key twice", func(t *testing.T) {
		r := kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", "alias/data", "--valid-to", validTo(200 * 24 * time.Hour), "--dry-run"}, common...)...)
		if r.Code != 0 || len(materials(t, emu, data.KeyId)) != 1 || hsmHasLabel(t, tok, "data-2026-r2") {
			t.Fatalf("dry run changed something: exit %d\n%s", r.Code, r.Stderr)
		}
		var gens [3]string
		gens[0] = data.KeyMaterialId
		cts := [][]byte{ct0}
		for i := 1; i <= 2; i++ {
			// Each rotation is asked for on purpose: within a day of the
			// last, the same request reports it done instead.
			r := kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", "alias/data", "--new-rotation", "--valid-to", validTo(200 * 24 * time.Hour), "--description", "generation " + string(rune('1'+i)), "--record", rec, "--output", "json"}, common...)...)
			var res awskms.RotateResult
			if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &res) != nil {
				t.Fatalf("rotation %d: exit %d\n%s\n%s", i, r.Code, r.Stdout, r.Stderr)
			}
			if res.Mode != "on-demand" || res.OldKeyMaterialId != gens[i-1] || res.NewKeyMaterialId == "" {
				t.Fatalf("rotation %d: %+v", i, res)
			}
			gens[i] = res.NewKeyMaterialId
			cts = append(cts, encrypt(t, emu.KMS, data.KeyId, "generation "+string(rune('1'+i))))
		}
		for i, ct := range cts {
			if got := decryptsTo(t, emu.KMS, ct, "generation "+string(rune('1'+i))); got != gens[i] {
				t.Errorf("generation %d ciphertext decrypted under material %s, want %s", i+1, got, gens[i])
			}
		}
		for _, label := range []string{"data-2026", "data-2026-r2", "data-2026-r3"} {
			if !hsmHasLabel(t, tok, label) {
				t.Errorf("the HSM lost generation %s", label)
			}
		}
		st, _ := statusJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label)
		backed := map[string]string{}
		labels := map[string]string{}
		for _, h := range st.HSMKeys {
			labels[h.ID] = h.Label
		}
		for _, k := range st.KMSKeys {
			if k.KeyId == data.KeyId {
				for _, m := range k.Materials {
					backed[m.KeyMaterialId] = labels[m.HSMKeyID]
				}
			}
		}
		if backed[gens[0]] != "data-2026" || backed[gens[1]] != "data-2026-r2" || backed[gens[2]] != "data-2026-r3" {
			t.Errorf("status shows materials backed by %v", backed)
		}
	})

	t.Run("manual rotation of an HMAC key moves the alias", func(t *testing.T) {
		mac := importJSON(t, tok, append(common, "--key-label", "mac-2026", "--generate", "--key-spec", "HMAC_256", "--alias", "alias/mac", "--no-expiry")...)
		r := kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", "alias/mac", "--no-expiry", "--output", "json"}, common...)...)
		var res awskms.RotateResult
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &res) != nil {
			t.Fatalf("rotate: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
		target, err := awskms.AliasTarget(context.Background(), emu.KMS, "alias/mac")
		if err != nil || res.Mode != "manual" || target != res.NewKeyId || target == mac.KeyId {
			t.Fatalf("alias/mac -> %s (%v); result %+v", target, err, res)
		}
		if s := keyState(t, emu, mac.KeyId); s != types.KeyStateEnabled {
			t.Errorf("old key %s, want kept Enabled", s)
		}
		if !strings.Contains(res.Verification, "GenerateMac") {
			t.Errorf("the new key was not proven: %q", res.Verification)
		}
		// The re-run with the new key's label finds the job done.
		r = kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", "alias/mac", "--new-key-label", "mac-2026-r2", "--no-expiry"}, common...)...)
		if r.Code != 0 || !strings.Contains(r.Stdout, "Already rotated") {
			t.Errorf("re-run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
		}
	})

	t.Run("aws CLI drives the rotation kmsbridge started", func(t *testing.T) {
		if _, err := exec.LookPath("aws"); err != nil {
			t.Skip("the aws CLI is not on PATH (scripts/install-deps.sh says so too); skipping the aws CLI rotation test")
		}
		// kmsbridge is killed after the new material is imported and
		// tagged, before it asks KMS to rotate.
		r := kmsbridge(t, tok, append([]string{killAt("step:" + awskms.StepTagMaterial), killGuard, "rotate", "--kms-key-id", data.KeyId, "--new-rotation", "--no-expiry"}, common...)...)
		if r.Code == 0 {
			t.Fatalf("the crash point did not stop rotate:\n%s", r.Stderr)
		}
		aws := func(args ...string) string {
			cmd := exec.Command("aws", append(args, "--endpoint-url", emu.URL, "--region", "us-east-1", "--output", "json")...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret"}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("aws %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		out := aws("kms", "list-key-rotations", "--key-id", data.KeyId, "--include-key-material", "ALL_KEY_MATERIAL")
		if !strings.Contains(out, `"PENDING_ROTATION"`) {
			t.Fatalf("aws kms list-key-rotations shows no pending material:\n%s", out)
		}
		aws("kms", "rotate-key-on-demand", "--key-id", data.KeyId)
		emu.advance(t, 2*time.Second)
		// kmsbridge finishes: untags and verifies, and rotates nothing more.
		r = kmsbridge(t, tok, append([]string{"rotate", "--kms-key-id", data.KeyId, "--no-expiry"}, common...)...)
		if r.Code != 0 || hsmHasLabel(t, tok, "data-2026-r5") || len(materials(t, emu, data.KeyId)) != 4 {
			t.Fatalf("re-run after the CLI rotated: exit %d, materials %d\n%s\n%s", r.Code, len(materials(t, emu, data.KeyId)), r.Stdout, r.Stderr)
		}
		out = aws("kms", "list-key-rotations", "--key-id", data.KeyId, "--include-key-material", "ALL_KEY_MATERIAL")
		if n := strings.Count(out, `"CURRENT"`); n != 1 || strings.Contains(out, "PENDING") {
			t.Errorf("after the re-run: %d CURRENT materials, pending left?\n%s", n, out)
		}
	})
}

// TestStatusFindsEveryPlantedProblem plants each problem kind in a token
// and account and checks status names it, with the documented exit codes.
func TestStatusFindsEveryPlantedProblem(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	common := lifeArgs(emu, tok)
	ctx := context.Background()
	fine := importJSON(t, tok, append(common, "--key-label", "fine", "--generate", "--no-expiry")...)
	st, r := statusJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label)
	if r.Code != exitOK || st.Health != awskms.HealthOK {
		t.Fatalf("clean account: exit %d, problems %+v", r.Code, st.Problems)
	}

	// Material expiring within --warn-days.
	importJSON(t, tok, append(common, "--key-label", "expiring", "--generate", "--valid-to", validTo(5*24*time.Hour))...)
	// A PendingImport key whose HSM copy exists: its material deleted.
	gone := importJSON(t, tok, append(common, "--key-label", "deleted", "--generate", "--no-expiry")...)
	if _, err := emu.KMS.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(gone.KeyId)}); err != nil {
		t.Fatal(err)
	}
	// A KMS key linked to an HSM key the token does not have, and a second
	// KMS key linked to the fine key's HSM key.
	plant := func(hsmID string) string {
		out, err := emu.KMS.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, Tags: []types.Tag{
			{TagKey: aws.String(awskms.TagHSMKeyID), TagValue: aws.String(hsmID)},
			{TagKey: aws.String(awskms.TagHSMKeyLabel), TagValue: aws.String("planted")},
			{TagKey: aws.String(awskms.TagTokenSerial), TagValue: aws.String(fine.HSM.Token.Serial)},
		}})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.KeyMetadata.KeyId)
	}
	missing := plant("deadbeef")
	twin := plant(fine.HSM.KeyID)

	st, r = statusJSON(t, tok, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--warn-days", "30")
	got := problemKinds(st)
	for _, kind := range []string{awskms.ProblemExpiring, awskms.ProblemPendingImport, awskms.ProblemMissingHSMKey, awskms.ProblemLinkedTwice} {
		if got[kind] == 0 {
			t.Errorf("no %s problem: %+v", kind, st.Problems)
		}
	}
	if r.Code != exitBroken || st.Health != awskms.HealthBroken {
		t.Errorf("exit %d, health %s; want %d, broken", r.Code, st.Health, exitBroken)
	}
	for _, p := range st.Problems {
		switch {
		case p.Kind == awskms.ProblemMissingHSMKey && p.KeyId != missing,
			p.Kind == awskms.ProblemLinkedTwice && !strings.Contains(p.KeyId, twin),
			p.Kind == awskms.ProblemPendingImport && p.KeyId == gone.KeyId && !strings.HasSuffix(p.Fix, "--kms-key-id "+gone.KeyId):
			t.Errorf("problem names the wrong key or fix: %+v", p)
		}
	}

	// The text table, and the KMS side alone (no token flags).
	r = kmsbridge(t, nil, "status", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL)
	if r.Code != exitBroken || !strings.Contains(r.Stdout, "Token: not read") || strings.Contains(r.Stdout, "missing-hsm-key") {
		t.Errorf("KMS side only: exit %d (a missing HSM key cannot be seen without the token)\n%s", r.Code, r.Stdout)
	}
	// The token side alone.
	st, r = statusJSON(t, tok, "--token-label", tok.Label, "--no-kms")
	if r.Code != exitOK || len(st.HSMKeys) != 3 || len(st.KMSKeys) != 0 {
		t.Errorf("--no-kms: exit %d, %d HSM keys, %d KMS keys", r.Code, len(st.HSMKeys), len(st.KMSKeys))
	}
	for _, h := range st.HSMKeys {
		if !strings.HasPrefix(h.URI, "pkcs11:token="+tok.Label+";") || !strings.Contains(h.URI, ";type=secret-key") {
			t.Errorf("URI %s", h.URI)
		}
	}

	// The node_exporter textfile: written atomically, and still written
	// (up 0, with the error) when status cannot run at all.
	prom := filepath.Join(t.TempDir(), "kmsbridge.prom")
	r = kmsbridge(t, tok, "status", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--textfile", prom)
	fam := textfile(t, prom)
	if r.Code != exitBroken || gauge(fam, "kmsbridge_status_up", "") != 1 || gauge(fam, "kmsbridge_status_health", "") != 2 || gauge(fam, "kmsbridge_problems", "missing-hsm-key") != 1 {
		t.Errorf("textfile of a broken account: exit %d\n%s", r.Code, r.Stderr)
	}
	// Without --region, the series name the Region the client resolved
	// (the harness's AWS_REGION), not an empty one.
	if up := fam["kmsbridge_status_up"].GetMetric()[0]; labelOf(up, "region") != "us-east-1" {
		t.Errorf("kmsbridge_status_up's region label is %q, want the resolved us-east-1", labelOf(up, "region"))
	}
	r = kmsbridge(t, tok, "status", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", "no-such-token", "--textfile", prom)
	fam = textfile(t, prom)
	if r.Code != 3 || gauge(fam, "kmsbridge_status_up", "") != 0 || len(fam["kmsbridge_problems"].GetMetric()) != 0 {
		t.Errorf("status that could not run: exit %d, textfile %v; want exit 3 and kmsbridge_status_up 0", r.Code, fam)
	}
	if up := fam["kmsbridge_status_up"].GetMetric()[0]; !strings.Contains(labelOf(up, "error"), "no-such-token") {
		t.Errorf("kmsbridge_status_up 0 does not say why: %v", up)
	}
}

// textfile parses a Prometheus textfile status wrote.
func textfile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("status wrote no textfile: %v", err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fam, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s is not in the text format: %v", path, err)
	}
	return fam
}

// gauge is the value of the series of name whose kind label is kind (any
// series when kind is ""), or -1 when there is none.
func gauge(fam map[string]*dto.MetricFamily, name, kind string) float64 {
	for _, m := range fam[name].GetMetric() {
		if kind == "" || labelOf(m, "kind") == kind {
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Every command status and delete-material print for the operator to run
// runs as printed, in a shell, and does what it says.
func TestPrintedCommandsRunAsPrinted(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	// One host: every command, the pasted ones too, runs with the same
	// HOME, so with the same default state directory (the journal that
	// proves the keys are kmsbridge's).
	home := "HOME=" + t.TempDir()
	common := []string{"--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--wrapping-key-spec", "RSA_2048"}
	imp := func(args ...string) awskms.Result {
		t.Helper()
		r := kmsbridge(t, tok, append(append([]string{home, "import", "--output", "json"}, common...), args...)...)
		var res awskms.Result
		if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &res) != nil {
			t.Fatalf("import %v: exit %d\n%s", args, r.Code, r.Stderr)
		}
		return res
	}
	status := func() awskms.Status {
		t.Helper()
		r := kmsbridge(t, tok, home, "status", "--output", "json", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label, "--warn-days", "30")
		var st awskms.Status
		if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
			t.Fatalf("status printed no JSON (exit %d): %v\n%s", r.Code, err, r.Stderr)
		}
		return st
	}
	exp := imp("--key-label", "soon", "--generate", "--valid-to", validTo(5*24*time.Hour))
	gone := imp("--key-label", "gone", "--generate", "--no-expiry")

	// delete-material prints the command that re-imports the material.
	r := kmsbridge(t, nil, home, "delete-material", "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--kms-key-id", gone.KeyId, "--yes")
	line := printedCommand(t, r.Stdout)
	if r.Code != 0 || !strings.Contains(line, "--kms-key-id "+gone.KeyId) {
		t.Fatalf("delete-material: exit %d, printed %q\n%s", r.Code, line, r.Stderr)
	}
	if r := kmsbridgeShell(t, tok, line, home); r.Code != 0 {
		t.Fatalf("the printed re-import %q: exit %d\n%s", line, r.Code, r.Stderr)
	}
	if st := keyState(t, emu, gone.KeyId); st != types.KeyStateEnabled {
		t.Errorf("after the printed re-import the key is %s, want Enabled", st)
	}

	// status prints a fix for the expiring material; run it as printed.
	var fix string
	for _, p := range status().Problems {
		if p.Kind == awskms.ProblemExpiring && p.KeyId == exp.KeyId {
			fix = p.Fix
		}
	}
	if fix == "" {
		t.Fatalf("no expiring problem with a fix")
	}
	if r := kmsbridgeShell(t, tok, fix, home); r.Code != 0 {
		t.Fatalf("status's fix %q: exit %d\n%s", fix, r.Code, r.Stderr)
	}
	if st := status(); len(st.Problems) != 0 {
		t.Errorf("after running status's own fix, problems remain: %+v", st.Problems)
	}
}

// printedCommand is the first line of out that starts with "kmsbridge ".
func printedCommand(t *testing.T, out string) string {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "kmsbridge ") {
			return l
		}
	}
	t.Fatalf("no command printed in:\n%s", out)
	return ""
}

func TestLifeCommandsRefuseBadInput(t *testing.T) {
	t.Parallel()
	tok := newToken(t)
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"status bad output", []string{"status", "--output", "yaml", "--endpoint-url", "http://127.0.0.1:9", "--allow-endpoint", "http://127.0.0.1:9"}, "choose text, json or prometheus", 2},
		{"status warn days", []string{"status", "--warn-days", "400", "--endpoint-url", "http://127.0.0.1:9", "--allow-endpoint", "http://127.0.0.1:9"}, "--warn-days 400", 2},
		{"status no-kms without token", []string{"status", "--no-kms"}, "no token was chosen", 2},
		{"status verify without token", []string{"status", "--verify", "--endpoint-url", "http://127.0.0.1:9", "--allow-endpoint", "http://127.0.0.1:9"}, "--verify proves", 2},
		{"renew without token", []string{"renew", "--endpoint-url", "http://127.0.0.1:9", "--allow-endpoint", "http://127.0.0.1:9"}, "choose the token", 2},
		{"renew valid-for too long", []string{"renew", "--token-label", tok.Label, "--valid-for", "400"}, "--valid-for 400", 2},
		{"renew two ways of expiry", []string{"renew", "--token-label", tok.Label, "--valid-for", "30", "--no-expiry"}, "choose one", 2},
		{"renew bad time", []string{"renew", "--token-label", tok.Label, "--valid-to", "tomorrow"}, "is not a time", 2},
		{"rotate without key", []string{"rotate", "--token-label", tok.Label, "--no-expiry"}, "--kms-key-id is required", 2},
		{"rotate without expiry", []string{"rotate", "--token-label", tok.Label, "--kms-key-id", "k"}, "no expiry chosen", 2},
		{"rotate without token", []string{"rotate", "--kms-key-id", "k", "--no-expiry"}, "choose the token", 2},
		{"import replica without multi-region", []string{"import", "--token-label", tok.Label, "--key-label", "x", "--generate", "--no-expiry", "--replica-region", "us-west-2"}, "add --multi-region", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := kmsbridge(t, tok, tt.args...)
			if r.Code != tt.code || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", r.Code, tt.code, tt.want, r.Stderr)
			}
		})
	}
}

// TestMultiRegionKeyLife imports one HSM key into a multi-Region key with
// two replicas (one emulator serves every Region), then renews and rotates
// the set as one, through an interrupted rotation that leaves the new
// material PENDING_MULTI_REGION_IMPORT_AND_ROTATION.
func TestMultiRegionKeyLife(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--rotation-delay", "1s")
	tok := newToken(t)
	common := lifeArgs(emu, tok)
	regions := []string{"--replica-region", "us-west-2", "--replica-region", "eu-central-1"}
	res := importJSON(t, tok, append(append(common, "--key-label", "global-2026", "--generate", "--alias", "alias/global", "--multi-region", "--valid-to", validTo(20*24*time.Hour)), regions...)...)
	if !strings.HasPrefix(res.KeyId, "mrk-") || len(res.Replicas) != 2 {
		t.Fatalf("key %s, replicas %+v", res.KeyId, res.Replicas)
	}
	clients := map[string]*kms.Client{"us-east-1": emu.KMS}
	for _, rep := range res.Replicas {
		if rep.Verification == "" || rep.WrappingPublicKeySHA256 == res.WrappingPublicKeySHA256 || rep.EncryptedKeyMaterialSHA256 == res.EncryptedKeyMaterialSHA256 {
			t.Errorf("replica %s: verification %q, wrapping key %s (primary's %s): each Region needs its own wrap", rep.Region, rep.Verification, rep.WrappingPublicKeySHA256, res.WrappingPublicKeySHA256)
		}
		c := kmsClient(emu.URL)
		region := rep.Region
		clients[region] = kms.New(c.Options(), func(o *kms.Options) { o.Region = region })
	}
	// Same material everywhere: a ciphertext from one Region decrypts in another.
	ct := encrypt(t, clients["eu-central-1"], res.KeyId, "made in eu-central-1")
	decryptsTo(t, clients["us-west-2"], ct, "made in eu-central-1")

	r := kmsbridge(t, tok, append(append([]string{"renew", "--within", "30", "--output", "json"}, common...), regions...)...)
	var rn awskms.RenewResult
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rn) != nil || rn.Renewed != 3 {
		t.Fatalf("renew of the set: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	for region, c := range clients {
		out, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(res.KeyId)})
		if err != nil || out.KeyMetadata.ValidTo == nil || time.Until(*out.KeyMetadata.ValidTo) < 360*24*time.Hour {
			t.Errorf("%s after renew: %v %+v", region, err, out)
		}
	}

	// kmsbridge is killed after the primary holds the new material and
	// before any replica does.
	r = kmsbridge(t, tok, append(append([]string{killAt("step:" + awskms.StepTagMaterial), killGuard, "rotate", "--kms-key-id", "alias/global", "--no-expiry"}, common...), regions...)...)
	if r.Code == 0 {
		t.Fatalf("the crash point did not stop rotate:\n%s", r.Stderr)
	}
	st, sr := statusJSON(t, tok, append([]string{"--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label}, regions...)...)
	pendingState := ""
	for _, p := range st.Problems {
		if p.Kind == awskms.ProblemRotationPending && p.Region == "us-east-1" {
			pendingState = p.Message
		}
	}
	if sr.Code != exitExpiring || !strings.Contains(pendingState, "PENDING_MULTI_REGION_IMPORT_AND_ROTATION") {
		t.Errorf("status after the crash: exit %d, primary's problem %q (all %+v)", sr.Code, pendingState, st.Problems)
	}
	r = kmsbridge(t, tok, append(append([]string{"rotate", "--kms-key-id", "alias/global", "--no-expiry", "--output", "json"}, common...), regions...)...)
	var rot awskms.RotateResult
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &rot) != nil {
		t.Fatalf("rotate re-run: exit %d\n%s\n%s", r.Code, r.Stdout, r.Stderr)
	}
	if len(rot.Replicas) != 2 || rot.NewHSMKey.KeyLabel != "global-2026-r2" || hsmHasLabel(t, tok, "global-2026-r3") {
		t.Errorf("rotate re-run: %+v", rot)
	}
	for region, c := range clients {
		ct := encrypt(t, c, res.KeyId, "after rotation in "+region)
		if got := decryptsTo(t, c, ct, "after rotation in "+region); got != rot.NewKeyMaterialId {
			t.Errorf("%s encrypts under material %s, want the new %s", region, got, rot.NewKeyMaterialId)
		}
	}
	decryptsTo(t, clients["us-west-2"], ct, "made in eu-central-1")
	if st, sr := statusJSON(t, tok, append([]string{"--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--token-label", tok.Label}, regions...)...); sr.Code != exitOK || len(st.KMSKeys) != 3 {
		t.Errorf("status after the rotation: exit %d, %d KMS keys (want the primary and two replicas), problems %+v", sr.Code, len(st.KMSKeys), st.Problems)
	}
}

// TestCeremonyRotatesOnceAndReplicates: a ceremony file imports a
// multi-Region key, then (edited the next year) rotates it with rotate-to;
// running the rotation file again only verifies.
func TestCeremonyRotatesOnceAndReplicates(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--rotation-delay", "1s")
	tok := newToken(t)
	dir := t.TempDir()
	write := func(name, extra string) string {
		body := fmt.Sprintf(`hsm:
  module: %s
  token:
    label: %s
  pin-source:
    env: KMSBRIDGE_PIN
kms:
  region: us-east-1
  endpoint: %[3]s
  allow-endpoint: %[3]s
record: %s
operators: [Alice, Bob]
dual-control:
  wrap-with-trusted: false
keys:
  - hsm-label: cer-global
    key-spec: SYMMETRIC_DEFAULT
    key-usage: ENCRYPT_DECRYPT
    alias: alias/cer-global
    wrapping-algorithm: RSAES_OAEP_SHA_1
    wrapping-key-spec: RSA_2048
    no-expiry: true
    multi-region: true
    replica-regions: [us-west-2]
%s`, tok.Module, tok.Label, emu.URL, filepath.Join(dir, "record.jsonl"), extra)
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	first := write("import.yaml", "    generate: true\n")
	if r := kmsbridge(t, tok, "ceremony", "run", first); r.Code != 0 {
		t.Fatalf("import ceremony: exit %d\n%s", r.Code, r.Stderr)
	}
	west := kms.New(emu.KMS.Options(), func(o *kms.Options) { o.Region = "us-west-2" })
	out, err := west.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/cer-global")})
	if err != nil || out.KeyMetadata.KeyState != types.KeyStateEnabled {
		t.Fatalf("replica in us-west-2: %v %+v", err, out)
	}
	keyID := aws.ToString(out.KeyMetadata.KeyId)

	rot := write("rotate.yaml", "    generate: false\n    rotate-to: cer-global-2027\n")
	r := kmsbridge(t, tok, "ceremony", "run", rot, "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "will: rotate to a new HSM key") || hsmHasLabel(t, tok, "cer-global-2027") {
		t.Fatalf("rotation dry run: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := kmsbridge(t, tok, "ceremony", "run", rot); r.Code != 0 {
		t.Fatalf("rotation ceremony: exit %d\n%s", r.Code, r.Stderr)
	}
	ms := materials(t, emu, keyID)
	if len(ms) != 2 {
		t.Fatalf("%d materials after the rotation, want 2", len(ms))
	}
	r = kmsbridge(t, tok, "ceremony", "run", rot, "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "already done: verify only") {
		t.Errorf("after the rotation the plan must be verify only:\n%s%s", r.Stdout, r.Stderr)
	}
	if r := kmsbridge(t, tok, "ceremony", "run", rot); r.Code != 0 || len(materials(t, emu, keyID)) != 2 {
		t.Errorf("second rotation run: exit %d, %d materials (want no new rotation)\n%s", r.Code, len(materials(t, emu, keyID)), r.Stderr)
	}
}
