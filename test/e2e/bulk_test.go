package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/record"
)

// bulkOut is import --from's JSON.
type bulkOut struct {
	Summary  ceremony.BulkSummary
	Error    string
	ExitCode int
}

func TestBulkImportIsolatesAFailureAndAReRunFinishesWithoutCreatingTwice(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	ctx := context.Background()
	// alias/taken points to a key KMS made itself: importing into it is
	// refused before anything changes, for that key only.
	other, err := emu.KMS.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emu.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/taken"), TargetKeyId: other.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	list := filepath.Join(dir, "keys.csv")
	var b strings.Builder
	b.WriteString("hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry\n")
	const n = 6
	for i := 0; i < n; i++ {
		spec, usage, alias := "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", fmt.Sprintf("alias/tenant-%d", i)
		if i == 1 {
			spec, usage = "HMAC_256", "GENERATE_VERIFY_MAC"
		}
		if i == 3 {
			alias = "alias/taken"
		}
		fmt.Fprintf(&b, "tenant-%d,true,%s,%s,%s,RSAES_OAEP_SHA_1,RSA_2048,true\n", i, spec, usage, alias)
	}
	if err := os.WriteFile(list, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(dir, "record.jsonl")
	bulk := func() bulkOut {
		t.Helper()
		r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
			"--from", list, "--parallel", "3", "--record", rec, "--output", "json")
		var out bulkOut
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
			t.Fatalf("no JSON summary (exit %d): %v\n%s\n%s", r.Code, err, r.Stdout, r.Stderr)
		}
		if r.Code != out.ExitCode {
			t.Errorf("exit %d, JSON says %d", r.Code, out.ExitCode)
		}
		return out
	}

	first := bulk()
	if first.Summary.Done != n-1 || first.Summary.Failed != 1 || first.ExitCode != 2 {
		t.Fatalf("first run: %d done, %d failed, exit %d; want %d done, 1 failed (tenant-3), exit 2\n%s", first.Summary.Done, first.Summary.Failed, first.ExitCode, n-1, first.Error)
	}
	if r := first.Summary.Results[3]; r.Status != ceremony.StatusFailed || !strings.Contains(r.Error, "not EXTERNAL") {
		t.Errorf("tenant-3: %s %q, want failed because alias/taken's key is not EXTERNAL", r.Status, r.Error)
	}
	if got := emu.keyCount(t); got != 1+n-1 {
		t.Errorf("%d KMS keys after the first run, want %d", got, 1+n-1)
	}
	firstEntries := countLines(t, rec)

	// The operator fixes the cause and runs the same command again.
	if _, err := emu.KMS.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/taken")}); err != nil {
		t.Fatal(err)
	}
	second := bulk()
	if second.Summary.Done != n || second.ExitCode != 0 {
		t.Fatalf("re-run: %d done, exit %d, %s", second.Summary.Done, second.ExitCode, second.Error)
	}
	for i, r := range second.Summary.Results {
		want := string(ceremony.ActionVerify)
		if i == 3 {
			want = string(ceremony.ActionGenerate)
		}
		if r.Action != want {
			t.Errorf("re-run, tenant-%d: %q, want %q", i, r.Action, want)
		}
	}
	if got := emu.keyCount(t); got != 1+n {
		t.Errorf("%d KMS keys after the re-run, want %d: a key was created twice", got, 1+n)
	}

	// One valid chain, each key's steps in the flow's order.
	fh, err := os.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rep, err := record.VerifyWith(fh, record.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("record does not verify: %v %v", err, rep)
	}
	order := map[string]int{}
	for i, s := range []string{awskms.StepValidate, awskms.StepSelectKey, awskms.StepProbe, awskms.StepCheckKMS, awskms.StepGenerate,
		awskms.StepCreateKey, awskms.StepGetParameters, awskms.StepWrap, awskms.StepImport, awskms.StepAlias, awskms.StepVerify} {
		order[s] = i
	}
	last, seen := map[string]int{}, map[string]bool{}
	for _, e := range rep.Entries[:firstEntries] {
		p := e.Parsed
		label := p.Outputs["CeremonyKeyLabel"]
		seen[label] = label != ""
		pos, ok := order[p.Step]
		if label == "" || !ok {
			continue
		}
		if prev, seen := last[label]; seen && pos <= prev {
			t.Errorf("entry %d: %s's step %s after a later step", e.Entry, label, p.Step)
		}
		last[label] = pos
	}
	delete(seen, "")
	if len(seen) != n {
		t.Errorf("the record has entries of %d keys, want %d (the failed one's too)", len(seen), n)
	}
}

// TestBulkImportRefusesLabelsTheTokenAlreadyHas: a bulk run reads the
// token's labels once, at its start, instead of searching for each key's;
// a label some object already has is still refused, for that key only.
func TestBulkImportRefusesLabelsTheTokenAlreadyHas(t *testing.T) {
	emu := startEmulator(t)
	tok := newToken(t)
	tk := openInProcess(t, tok)
	// tenant-0 is the label of an EC key pair (no secret key), tenant-1 of
	// an AES key, both made without kmsbridge.
	if _, err := tk.Generate("tenant-0", hsm.ECKey(hsm.P256), false); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Generate("tenant-1", hsm.AES256(), false); err != nil {
		t.Fatal(err)
	}
	before, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	list := aesKeyList(t, "tenant", 3)
	r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--from", list, "--parallel", "3", "--output", "json")
	var out bulkOut
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("no JSON summary (exit %d): %v\n%s", r.Code, err, r.Stderr)
	}
	res := out.Summary.Results
	if out.Summary.Done != 1 || out.Summary.Failed != 2 || r.Code == 0 || len(res) != 3 {
		t.Fatalf("%d done, %d failed, exit %d; want tenant-2 done, tenant-0 and tenant-1 failed, a non-zero exit\n%+v", out.Summary.Done, out.Summary.Failed, r.Code, res)
	}
	for i, want := range []string{`already has an object labelled "tenant-0"`, `already has a key labelled "tenant-1"`} {
		if res[i].Status != ceremony.StatusFailed || !strings.Contains(res[i].Error, want) {
			t.Errorf("tenant-%d: %s %q, want failed: %s", i, res[i].Status, res[i].Error, want)
		}
	}
	if res[2].Status != ceremony.StatusDone {
		t.Errorf("tenant-2: %s %q, want done", res[2].Status, res[2].Error)
	}
	if got := emu.keyCount(t); got != 1 {
		t.Errorf("%d KMS keys, want 1 (tenant-2's)", got)
	}
	after, err := tk.Inventory()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+1 {
		t.Errorf("%d objects in the token after the run, want %d: the %d there before and tenant-2's key", len(after), len(before)+1, len(before))
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// TestCeremonyRunParallel runs a ceremony file's keys four at a time, with
// every record entry signed by the HSM audit key from the same token's
// session pool, then runs it again: everything is verified, nothing made
// twice.
func TestCeremonyRunParallel(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--lenient-pkcs8-padding")
	tok := newToken(t)
	dir := t.TempDir()
	rec, pub := filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	file := writeCeremony(t, dir, emu.URL, rec, tok, true)
	run := func() bulkOut {
		t.Helper()
		r := kmsbridge(t, tok, "ceremony", "run", "--parallel", "4", "--output", "json", file)
		var out bulkOut
		if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || r.Code != 0 {
			t.Fatalf("ceremony run --parallel: exit %d, %v\n%s\n%s", r.Code, err, r.Stdout, r.Stderr)
		}
		return out
	}
	first := run()
	if first.Summary.Done != len(ceremonyKeys) || first.Summary.Parallel != 4 {
		t.Fatalf("first run: %+v", first.Summary)
	}
	second := run()
	for _, r := range second.Summary.Results {
		if r.Action != string(ceremony.ActionVerify) || r.Status != ceremony.StatusDone {
			t.Errorf("re-run, %s: %s %q, want verified only", r.HSMLabel, r.Status, r.Action)
		}
	}
	if got := emu.keyCount(t); got != len(ceremonyKeys) {
		t.Errorf("%d KMS keys, want %d", got, len(ceremonyKeys))
	}
	if r := kmsbridge(t, nil, "record", "verify", rec, "--public-key", pub); r.Code != 0 {
		t.Fatalf("record verify: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// TestBulkImportUnderALowerQuotaThanKmsbridgeKnows: the account's quotas
// are lower than kmsbridge's client-side limits (other users share them,
// or AWS lowered them); KMS throttles, and every key is still imported,
// none twice: a throttled change did nothing, and kmsbridge re-sends it
// (awskms.ThrottleAttempts) beyond the attempts a lost answer gets.
func TestBulkImportUnderALowerQuotaThanKmsbridgeKnows(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--quota", "CreateKey=1", "--quota", "CreateAlias=1", "--quota", "ImportKeyMaterial=1", "--quota", "TagResource=1")
	tok := newToken(t)
	const n = 6
	list := aesKeyList(t, "quota", n)
	r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--from", list, "--parallel", "6", "--kms-rate", "GetParametersForImport=0", "--output", "json")
	var out bulkOut
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("no JSON summary (exit %d): %v\n%s", r.Code, err, r.Stderr)
	}
	if out.Summary.Done != n || r.Code != 0 {
		t.Fatalf("%d of %d done, exit %d: %s\n%+v", out.Summary.Done, n, r.Code, out.Error, out.Summary.Results)
	}
	if got := emu.keyCount(t); got != n {
		t.Errorf("%d KMS keys, want %d: none twice", got, n)
	}
}

// TestBulkImportReplicatesMultiRegionKeys: a key list's multi-region and
// replica-regions columns are applied (the Region flags are refused with
// --from, never ignored): the key is a multi-Region primary, and its
// replica in us-west-2 holds the same material.
func TestBulkImportReplicatesMultiRegionKeys(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t)
	tok := newToken(t)
	list := filepath.Join(t.TempDir(), "keys.csv")
	if err := os.WriteFile(list, []byte("hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry,multi-region,replica-regions\n"+
		"global-1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/global-1,RSAES_OAEP_SHA_1,RSA_2048,true,true,us-west-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := kmsbridge(t, tok, "import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL, "--from", list, "--output", "json")
	var out bulkOut
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil || r.Code != 0 || out.Summary.Done != 1 {
		t.Fatalf("exit %d, %v\n%s\n%s", r.Code, err, r.Stdout, r.Stderr)
	}
	id := out.Summary.Results[0].KMSKeyID
	if !strings.HasPrefix(id, "mrk-") {
		t.Fatalf("KMS key %q: want a multi-Region key (mrk-...)", id)
	}
	west := kms.New(emu.KMS.Options(), func(o *kms.Options) { o.Region = "us-west-2" })
	ct := encrypt(t, emu.KMS, id, "made in us-east-1")
	decryptsTo(t, west, ct, "made in us-east-1")
}

// aesKeyList writes a key list of n SYMMETRIC_DEFAULT keys to generate,
// labelled PREFIX-0 to PREFIX-(n-1), each with the alias alias/LABEL, and
// returns its path.
func aesKeyList(t *testing.T, prefix string, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "%[1]s-%[2]d,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/%[1]s-%[2]d,RSAES_OAEP_SHA_1,RSA_2048,true\n", prefix, i)
	}
	list := filepath.Join(t.TempDir(), "keys.csv")
	if err := os.WriteFile(list, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return list
}
