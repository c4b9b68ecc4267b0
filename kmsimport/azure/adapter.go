package azure

import (
	"net/url"
	"strconv"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Target is Key Vault for one request, as the neutral core's
// kmsimport.Adapter: its wrap method (BYOK's one, under a KEK of the
// request's size), the journal it is journaled under, and the request as
// the record names it.
type Target struct {
	Req Request
}

// Cloud names Key Vault in messages.
func (t Target) Cloud() string { return target{}.Cloud() }

// WrapMethods is BYOK's one method, under a KEK of the request's size.
func (t Target) WrapMethods(p hsm.KeyParams) []kmsimport.CloudWrap {
	return target{t.Req.KEKBits}.WrapMethods(p)
}

// JournalTarget is the vault's host: runs into one vault share a journal.
func (t Target) JournalTarget() string {
	host := t.Req.Vault
	if u, err := url.Parse(t.Req.Vault); err == nil {
		host = u.Host
	}
	return "azure@" + host
}

// RecordInputs is the request as the ceremony record names it.
func (t Target) RecordInputs() map[string]string {
	return map[string]string{"Cloud": "azure", "Vault": t.Req.Vault, "KeyName": t.Req.KeyName, "KekName": t.Req.KEKName,
		"KeyLabel": t.Req.KeyLabel, "Generate": strconv.FormatBool(t.Req.Generate), "KeyType": t.Req.KeyType,
		"ManagedHsm": strconv.FormatBool(t.Req.ManagedHSM)}
}

var _ kmsimport.Adapter = Target{}
