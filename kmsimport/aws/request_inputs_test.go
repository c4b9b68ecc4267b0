package aws

import (
	"testing"
	"time"
)

func TestRecordInputs(t *testing.T) {
	in := Request{KeyLabel: "k", KeyID: []byte{0xab, 0x01}, Generate: true, Alias: "alias/k",
		Expiry: Expiry{ValidTo: time.Date(2027, 6, 30, 2, 0, 0, 0, time.FixedZone("x", 2*3600))}}.RecordInputs()
	for name, want := range map[string]string{"HsmKeyLabel": "k", "HsmKeyId": "ab01", "Generate": "true", "AliasName": "alias/k", "NoExpiry": "false", "ValidTo": "2027-06-30T00:00:00Z"} {
		if in[name] != want {
			t.Errorf("%s = %q, want %q", name, in[name], want)
		}
	}
	if _, ok := in["MultiRegion"]; ok {
		t.Error("MultiRegion recorded for a single-Region import")
	}
	if got := (Request{MultiRegion: true}).RecordInputs(); got["MultiRegion"] != "true" || got["ValidTo"] != "" {
		t.Errorf("multi-Region inputs = %v, want MultiRegion true and no ValidTo", got)
	}
}
