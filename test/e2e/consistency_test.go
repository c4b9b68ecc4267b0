package e2e

import (
	"strings"
	"testing"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// stepSummary is the summary of the named step of an import result.
func stepSummary(res awskms.Result, name string) string {
	for _, s := range res.Steps {
		if s.Name == name {
			return s.Summary
		}
	}
	return ""
}

// TestImportWaitsOutKMSEventualConsistency runs a multi-Region import
// against an emulator that, as KMS may, does not know a key for a while
// after CreateKey or ReplicateKey, and keeps each new replica Creating:
// kmsbridge waits, says so, and finishes, never advising to check
// --kms-key-id.
func TestImportWaitsOutKMSEventualConsistency(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--fresh-key-unknown-for", "2s", "--replica-creating", "2s")
	tok := newToken(t)
	res := importJSON(t, tok, append(lifeArgs(emu, tok), "--key-label", "ec-2026", "--generate", "--multi-region", "--replica-region", "us-west-2", "--no-expiry")...)
	if s := stepSummary(res, awskms.StepGetParameters); !strings.Contains(s, "eventual consistency") {
		t.Errorf("get-parameters summary %q does not say it waited for KMS", s)
	}
	if len(res.Replicas) != 1 || res.Replicas[0].Verification == "" || res.KeyState != "Enabled" {
		t.Fatalf("replicas %+v, key %s", res.Replicas, res.KeyState)
	}
	if n := emu.keyCount(t); n != 1 {
		t.Errorf("%d keys in the home Region, want 1", n)
	}
}

// TestLostCreateKeyAnswerWhileKMSDoesNotListTheKeyYet loses CreateKey's
// answer after it took effect, on an emulator whose ListKeys does not list
// a new key for a while: kmsbridge looks again until it is listed, takes it
// up, and never creates a second key.
func TestLostCreateKeyAnswerWhileKMSDoesNotListTheKeyYet(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--fresh-key-unknown-for", "3s")
	tok := newToken(t)
	var out struct{ FaultId int }
	emu.raw(t, "KmsBridgeInjectFault", map[string]any{"Operation": "CreateKey", "Fault": "LostResponse"}, &out)
	res := importJSON(t, tok, append(lifeArgs(emu, tok), "--key-label", "lost-2026", "--generate", "--no-expiry", "--kms-timeout", noHangKMSTimeout)...)
	if !res.CreatedKMSKey || res.KeyState != "Enabled" {
		t.Fatalf("result %+v", res)
	}
	var faults struct {
		Calls map[string]int
	}
	emu.raw(t, "KmsBridgeListFaults", map[string]any{}, &faults)
	if faults.Calls["CreateKey"] != 1 || emu.keyCount(t) != 1 {
		t.Errorf("CreateKey called %d times, %d keys: a key ListKeys does not list yet was taken as absent", faults.Calls["CreateKey"], emu.keyCount(t))
	}
}
