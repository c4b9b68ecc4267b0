package gcp

import "testing"

// TestTargetNamesJournalAndRecord: runs into one project and location
// (and endpoint) share a journal; the record names the full crypto key.
func TestTargetNamesJournalAndRecord(t *testing.T) {
	req := Request{Project: "p", Location: "europe-west1", KeyRing: "r", CryptoKey: "k", KeyLabel: "l", Generate: true, SkipAttestation: true}
	if got := (Target{Req: req}).JournalTarget(); got != "gcp-p-europe-west1" {
		t.Errorf("journal target %q", got)
	}
	if got := (Target{Req: req, EndpointURL: "http://127.0.0.1:9443/"}).JournalTarget(); got != "gcp-p-europe-west1@127.0.0.1:9443" {
		t.Errorf("journal target with an endpoint %q", got)
	}
	in := Target{Req: req}.RecordInputs()
	if in["Cloud"] != "gcp" || in["CryptoKey"] != "projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k" || in["Generate"] != "true" || in["SkipAttestation"] != "true" {
		t.Errorf("record inputs %v", in)
	}
}
