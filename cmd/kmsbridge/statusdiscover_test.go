package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// The journals of one token name its targets: an import that the cloud
// refused names none; the endpoint of a Cloud KMS target is told by its
// journal's scope and must be named to be read.
func TestDiscoverTargetsFromJournals(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	req := gcp.Request{Project: "proj-123", Location: "europe-west1", KeyRing: "r", CryptoKey: "k"}
	const emu = "http://127.0.0.1:9090"
	write := func(target string, entries ...[3]string) {
		j, err := journal.Open(ctx, dir, journal.Scope{TokenSerial: "serial1", Target: target})
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		for _, e := range entries {
			in := journal.Intent{Command: "import", Op: e[0]}
			switch e[0] {
			case "ImportCryptoKeyVersion":
				in.Target = map[string]string{"CryptoKey": e[1], "HsmKeyId": "AB01"}
			case "azure:ImportKey":
				in.Target = map[string]string{"Vault": "https://127.0.0.1:8443", "KeyName": e[1], "KeyLabel": "lbl"}
				in.Find = map[string]string{"tag:" + azure.TagHSMKeyID: "cd02"}
			case "azure:CreateKey":
				in.Target = map[string]string{"Vault": "https://127.0.0.1:8443", "KeyName": e[1]}
			}
			p, err := j.Intend(in)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Done(e[2], nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(gcp.JournalTarget(req, emu), [3]string{"ImportCryptoKeyVersion", "projects/proj-123/locations/europe-west1/keyRings/r/cryptoKeys/k", journal.ResultOK},
		[3]string{"ImportCryptoKeyVersion", "projects/proj-123/locations/europe-west1/keyRings/r/cryptoKeys/refused", journal.ResultFailed})
	write(azure.JournalTarget("https://127.0.0.1:8443"), [3]string{"azure:CreateKey", "my-kek", journal.ResultOK}, [3]string{"azure:ImportKey", "signer", journal.ResultUnknown})

	ds := discoverTargets(ctx, dir, "serial1", nil)
	if len(ds) != 2 {
		t.Fatalf("discovered %+v", ds)
	}
	g, a := ds[1], ds[0] // sorted by journal: azure first
	if g.cloud != "gcp" || g.hsmKeyID != "ab01" || g.name != req.KeyName() {
		t.Errorf("gcp %+v", g)
	}
	if a.cloud != "azure" || a.keyName != "signer" || a.kek != "my-kek" || a.hsmKeyID != "cd02" || a.name != "https://127.0.0.1:8443/keys/signer" {
		t.Errorf("azure %+v", a)
	}
	if ep, ok := gcpEndpointOf(req, "serial1", g.journal, nil); ok {
		t.Errorf("an emulator's target read without being named (%q)", ep)
	}
	if ep, ok := gcpEndpointOf(req, "serial1", g.journal, []string{"http://127.0.0.1:1", emu}); !ok || ep != emu {
		t.Errorf("named endpoint: %q %v", ep, ok)
	}
	if ep, ok := gcpEndpointOf(req, "serial1", journal.Scope{TokenSerial: "serial1", Target: gcp.JournalTarget(req, "")}.FileName(), nil); !ok || ep != "" {
		t.Errorf("Google's own: %q %v", ep, ok)
	}
	// Not named: rows say so, with the flag that reads them.
	rows := readDiscovered(ctx, ds, "serial1", nil, nil)
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		if r.State != "unread" || r.Problem != problemTargetUnread || r.Fix == "" {
			t.Errorf("row %+v", r)
		}
	}
	// Known from --targets: not read twice.
	known := map[string]bool{"gcp " + req.KeyName(): true, "azure https://127.0.0.1:8443/keys/signer": true}
	if rows := readDiscovered(ctx, ds, "serial1", nil, known); len(rows) != 0 {
		t.Errorf("known targets read again: %+v", rows)
	}
}

func TestTargetKeyName(t *testing.T) {
	for in, want := range map[kmsimport.StatusTarget]string{
		{Cloud: "gcp", Target: "projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3"}: "projects/p/locations/l/keyRings/r/cryptoKeys/k",
		{Cloud: "gcp", Target: "projects/p/locations/l/keyRings/r/cryptoKeys/k"}:                     "projects/p/locations/l/keyRings/r/cryptoKeys/k",
		{Cloud: "azure", Target: "https://v.vault.azure.net/keys/k/0123abcd"}:                        "https://v.vault.azure.net/keys/k",
		{Cloud: "azure", Target: "https://v.vault.azure.net/keys/k"}:                                 "https://v.vault.azure.net/keys/k",
	} {
		if got := targetKeyName(in); got != want {
			t.Errorf("%s: %q, want %q", in.Target, got, want)
		}
	}
}

func TestCheckTargetEndpoints(t *testing.T) {
	if err := checkTargetEndpoints([]string{"http://127.0.0.1:9090", "https://127.0.0.1:8443", "https://vault.example.net"}); err != nil {
		t.Errorf("good endpoints refused: %v", err)
	}
	for _, bad := range []string{"127.0.0.1:9090", "ftp://x", "http://example.com", "https://user:pw@127.0.0.1:1", ""} {
		err := checkTargetEndpoints([]string{bad})
		if err == nil || exitCode(err) != exitInvalidInput || !strings.Contains(err.Error(), "--allow-target-endpoint") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// A journal is input: a line of one vault's journal that names another
// vault (an edit, or a file copied in) is not a target of that journal,
// as a Cloud KMS line is held to its journal's scope. Otherwise status
// would read, with this host's Azure credential, a vault the operator
// never imported into, and could show a key planted there as healthy.
func TestDiscoverTargetsHoldsAVaultLineToItsJournal(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const own, other = "https://contoso.vault.azure.net", "https://attacker.vault.azure.net"
	j, err := journal.Open(ctx, dir, journal.Scope{TokenSerial: "serial1", Target: azure.JournalTarget(own)})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{own, other} {
		for _, op := range []string{"azure:CreateKey", "azure:ImportKey"} {
			name := "signer"
			if op == "azure:CreateKey" {
				name = "kek-of-" + strings.TrimPrefix(v, "https://")
			}
			p, err := j.Intend(journal.Intent{Command: "import", Op: op, Target: map[string]string{"Vault": v, "KeyName": name},
				Find: map[string]string{"tag:" + azure.TagHSMKeyID: "cd02"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Done(journal.ResultOK, nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	j.Close()
	ds := discoverTargets(ctx, dir, "serial1", nil)
	if len(ds) != 1 || ds[0].vault != own || ds[0].kek != "kek-of-contoso.vault.azure.net" {
		t.Fatalf("discovered %+v, want only %s's key with its own KEK", ds, own)
	}
}
