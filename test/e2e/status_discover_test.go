package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// TestStatusDiscoversTargetsWithoutACeremonyFile: status with a token
// lists the Cloud KMS and Key Vault targets of its HSM keys from this
// host's journals, with no ceremony file: one sent by a Google-only
// ceremony, one by import --cloud azure outside any ceremony. Targets
// imported through an endpoint that is not Google's or Azure's are read
// only when --allow-target-endpoint names it; until then they are rows
// saying so, and the inventory is incomplete (exit 7). --targets still
// works beside it, without listing a target twice.
func TestStatusDiscoversTargetsWithoutACeremonyFile(t *testing.T) {
	t.Parallel()
	cl := startClouds(t)
	tok := newToken(t)
	file := cl.writeTargetsOnly(t, tok, mcGCPTarget, "    tags:\n      owner: payments\n", "")
	rep := ceremonyReport(t, cl.ceremony(t, tok, nil, "-o", "json", file))
	gcpKeyID := rep.Keys[0].Targets[0].Gcp.HSM.KeyID
	r := kmsbridge(t, tok, append(append([]string{}, cl.azure.env...), "import", "--cloud", "azure", "--endpoint-url", cl.azure.URL(), "--allow-endpoint", cl.azure.URL(),
		"--token-label", tok.Label, "--output", "json", "--kek-size", "2048", "--state-dir", cl.state, "--key-name", "solo", "--key-label", "solo", "--generate", "--azure-key-type", "EC-P256",
		"--record", filepath.Join(cl.dir, "solo.jsonl"))...)
	if r.Code != 0 {
		t.Fatalf("import --cloud azure: exit %d\n%s", r.Code, r.Stderr)
	}

	stateDir := cl.state
	status := func(extra ...string) (run, awskms.Status) {
		t.Helper()
		args := append(append([]string{}, cl.azure.env...), "status", "--token-label", tok.Label, "--endpoint-url", cl.aws.URL, "--allow-endpoint", cl.aws.URL,
			"--region", "us-east-1", "--state-dir", stateDir)
		r := kmsbridge(t, tok, append(args, extra...)...)
		var st awskms.Status
		if strings.Contains(strings.Join(extra, " "), "-o json") {
			if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
				t.Fatalf("status: exit %d, no JSON: %v\n%s%s", r.Code, err, r.Stdout, r.Stderr)
			}
		}
		return r, st
	}

	stateBefore := dirListing(t, cl.state)
	// A bad --allow-target-endpoint is refused before anything is read.
	if r, _ := status("--allow-target-endpoint", "http://example.com"); r.Code != 2 || !strings.Contains(r.Stderr, "--allow-target-endpoint") {
		t.Errorf("plain http off loopback: exit %d\n%s", r.Code, r.Stderr)
	}

	// Not named: both targets are found, neither is read.
	r, st := status("-o", "json")
	if r.Code != 7 || len(st.Targets) != 2 {
		t.Fatalf("status without --allow-target-endpoint: exit %d, %d targets\n%s", r.Code, len(st.Targets), r.Stdout)
	}
	for _, tg := range st.Targets {
		if tg.State != "unread" || tg.HSMKeyID == "" {
			t.Errorf("row %+v, want unread with its HSM key", tg)
		}
	}
	if !strings.Contains(r.Stdout, `"Kind": "target-unread"`) || !strings.Contains(r.Stdout, "--allow-target-endpoint") {
		t.Errorf("no target-unread problem naming --allow-target-endpoint:\n%s", r.Stdout)
	}

	// Named: both are read from their clouds, linked to their HSM keys.
	allow := []string{"--allow-target-endpoint", cl.gcp.URL, "--allow-target-endpoint", cl.azure.URL()}
	r, st = status(append([]string{"-o", "json"}, allow...)...)
	if r.Code != 0 || len(st.Targets) != 2 {
		t.Fatalf("status: exit %d, %d targets\n%s%s", r.Code, len(st.Targets), r.Stdout, tail(r.Stderr, 2000))
	}
	byCloud := map[string]kmsimport.StatusTarget{}
	for _, tg := range st.Targets {
		byCloud[tg.Cloud] = tg
	}
	g, a := byCloud["gcp"], byCloud["azure"]
	if g.State != "ENABLED" || !g.Linked || g.HSMKeyID != gcpKeyID || !strings.HasSuffix(g.Target, "/cryptoKeyVersions/1") || g.ImportJob == "" {
		t.Errorf("Cloud KMS row %+v", g)
	}
	if a.State != "Enabled" || !a.Linked || a.HSMKeyID == "" || a.HSMKeyID == gcpKeyID || !strings.Contains(a.Target, "/keys/solo/") || !strings.Contains(a.KEK, "key_ops import") {
		t.Errorf("Key Vault row %+v", a)
	}
	// status reads the link from labels and tags, never the material: it
	// says so (LinkedBy "tags"), in the JSON and the LINKED BY column.
	if g.LinkedBy != kmsimport.LinkedByTags || a.LinkedBy != kmsimport.LinkedByTags {
		t.Errorf("targets linked by %q (gcp) and %q (azure), want %q", g.LinkedBy, a.LinkedBy, kmsimport.LinkedByTags)
	}

	// The table and the metrics carry them too.
	prom := filepath.Join(cl.dir, "discover.prom")
	r, _ = status(append([]string{"--columns", "cloud,hsm-key,kms-key,state,linked-by", "--textfile", prom}, allow...)...)
	if r.Code != 0 {
		t.Fatalf("status table: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, want := range []string{"CLOUD", "gcp ", "azure ", "ENABLED", "Enabled", "signer", "solo", "LINKED BY", "Enabled  tags"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.Stdout)
		}
	}
	metrics, _ := os.ReadFile(prom)
	for _, want := range []string{`cloud="gcp"`, `cloud="azure"`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s:\n%s", want, metrics)
		}
	}

	// --targets beside discovery: the file's target once, the other found.
	r, st = status(append([]string{"-o", "json", "--targets", file}, allow...)...)
	if r.Code != 0 || len(st.Targets) != 2 {
		t.Errorf("status --targets: exit %d, %d targets\n%s", r.Code, len(st.Targets), r.Stdout)
	}

	// status changed nothing in the state directory: no lock, no cut, no
	// compaction of the journals it read.
	if after := dirListing(t, cl.state); after != stateBefore {
		t.Errorf("status changed the state directory:\n%s\nnow:\n%s", stateBefore, after)
	}

	// From the records alone (another host's state directory, empty
	// here): the Key Vault key its import record names is read; the
	// ceremony record names the Cloud KMS key but not the endpoint it
	// went through, so that one is unread, saying what reads it.
	stateDir = t.TempDir()
	// Records written without an audit key are taken only on purpose:
	// anyone can write a self-consistent file.
	fromRecords := []string{"--from-record", filepath.Join(cl.dir, "solo.jsonl"), "--from-record", cl.rec}
	if r, _ := status(append(fromRecords, allow...)...); r.Code != 2 || !strings.Contains(r.Stderr, "--from-record-chain-only") {
		t.Errorf("unsigned records without --from-record-chain-only: exit %d\n%s", r.Code, tail(r.Stderr, 2000))
	}
	r, st = status(append(append([]string{"-o", "json", "--from-record-chain-only"}, fromRecords...), allow...)...)
	byCloud = map[string]kmsimport.StatusTarget{}
	for _, tg := range st.Targets {
		byCloud[tg.Cloud] = tg
	}
	if r.Code != 7 || len(st.Targets) != 2 || byCloud["azure"].State != "Enabled" || !byCloud["azure"].Linked || byCloud["gcp"].State != "unread" ||
		!strings.Contains(r.Stdout, "--targets CEREMONY.yaml") {
		t.Errorf("--from-record: exit %d\n%s%s", r.Code, r.Stdout, tail(r.Stderr, 2000))
	}
	// A record that does not verify is refused.
	bad := filepath.Join(cl.dir, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"Seq\": 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, _ := status("--from-record", bad, "--from-record-chain-only"); r.Code != 2 || !strings.Contains(r.Stderr, "does not verify") {
		t.Errorf("a record that does not verify: exit %d\n%s", r.Code, r.Stderr)
	}
	stateDir = cl.state

	// --no-kms reads the token only: no cloud, no target.
	r, st = status("-o", "json", "--no-kms")
	if len(st.Targets) != 0 {
		t.Errorf("--no-kms read %d targets", len(st.Targets))
	}
}

// dirListing is each file of dir with its size and modification time.
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(fmt.Sprintln(e.Name(), fi.Size(), fi.ModTime().UnixNano()))
	}
	return b.String()
}
