package azure

import (
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// TestTargetNamesJournalAndRecord: runs into one vault share a journal;
// the one wrap method is under a KEK of the request's size.
func TestTargetNamesJournalAndRecord(t *testing.T) {
	tg := Target{Req: Request{Vault: "https://contoso.vault.azure.net", KeyName: "k", KEKName: "kek", KEKBits: 3072, KeyLabel: "l"}}
	if got := tg.JournalTarget(); got != "azure@contoso.vault.azure.net" {
		t.Errorf("journal target %q", got)
	}
	if in := tg.RecordInputs(); in["Cloud"] != "azure" || in["Vault"] != tg.Req.Vault || in["KekName"] != "kek" || in["Generate"] != "false" {
		t.Errorf("record inputs %v", in)
	}
	ws := tg.WrapMethods(hsm.RSAKey(3072))
	if len(ws) != 1 || ws[0].RSABits != 3072 || !ws[0].Method.RSAAES || ws[0].Method.OAEP != hsm.OAEPSHA1 {
		t.Errorf("wrap methods %+v", ws)
	}
}
