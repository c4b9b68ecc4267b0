package azure

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// RenewAPI is what renew needs of Key Vault; *azkeys.Client satisfies it.
type RenewAPI interface {
	API
	UpdateKey(ctx context.Context, name, version string, p azkeys.UpdateKeyParameters, o *azkeys.UpdateKeyOptions) (azkeys.UpdateKeyResponse, error)
}

var _ RenewAPI = (*azkeys.Client)(nil)

const journalOpRenew = "azure:UpdateKey"

// RenewRequest moves a Key Vault key's expiry (its exp attribute), as
// renew does for AWS material. Key Vault keeps the imported material
// whatever exp says (an expired key only refuses to be used), so the
// same material needs no new import: only exp moves.
type RenewRequest struct {
	Vault, KeyName string
	// Expires is the new exp; nil removes it (the key never expires).
	Expires *time.Time
	// WithinDays: a key whose exp is further away than this is not due
	// and is left alone; an expired key is always due.
	WithinDays int
	DryRun     bool
}

// RenewResult is what renew did for one Key Vault key.
type RenewResult struct {
	Cloud   string     `json:"Cloud"`
	Vault   string     `json:"Vault"`
	KeyName string     `json:"KeyName"`
	KeyID   string     `json:"KeyId,omitempty"`
	Expires *time.Time `json:"Expires,omitempty"`
	// NewExpires is the exp renew set (or would set, with --dry-run).
	NewExpires *time.Time `json:"NewExpires,omitempty"`
	NoExpiry   bool       `json:"NoExpiry,omitempty"`
	// Renewed is true when this run moved exp; false when it was not due,
	// already done, or a dry run.
	Renewed bool   `json:"Renewed"`
	Reason  string `json:"Reason"`
	HSM     HSMKey `json:"Hsm"`
	Proof   Proof  `json:"Proof"`
	DryRun  bool   `json:"DryRun,omitempty"`
}

// Renew moves the exp of one Key Vault key imported from this token,
// proving first that it is ours: its tags name an HSM key of this token
// and that key's public key is the vault key's. A key not due (exp
// further than WithinDays, or no exp) is left alone, so renew is safe
// from cron. The change is journaled; a re-run after a lost answer finds
// exp already moved and does nothing again.
func (im *Importer) Renew(ctx context.Context, api RenewAPI, req RenewRequest) (*RenewResult, error) {
	now := im.now().UTC()
	res := &RenewResult{Cloud: "azure", Vault: req.Vault, KeyName: req.KeyName, DryRun: req.DryRun, NoExpiry: req.Expires == nil}
	if !byok.ValidKeyName(req.KeyName) {
		return res, invalid("--key-name %q: Key Vault key names are 1-127 letters, digits and '-'", req.KeyName)
	}
	if req.Expires != nil && !req.Expires.After(now) {
		return res, invalid("the new expiry %s is not in the future: give a later --valid-to (or --valid-for DAYS)", req.Expires.Format(time.RFC3339))
	}
	got, err := api.GetKey(ctx, req.KeyName, "", nil)
	if isNotFound(err) {
		return res, invalid("the vault %s has no key %s: check --key-name", req.Vault, req.KeyName)
	}
	if err != nil {
		return res, kvError("GetKey", err)
	}
	b := got.KeyBundle
	if b.Key == nil || b.Key.KID == nil {
		return res, fmt.Errorf("%w: Key Vault returned no key for %s", kmsimport.ErrVerification, req.KeyName)
	}
	res.KeyID = string(*b.Key.KID)
	if b.Attributes != nil && b.Attributes.Expires != nil {
		e := b.Attributes.Expires.UTC()
		res.Expires = &e
	}

	// Ours? The tags name an HSM key of this token, the token holds it,
	// and the vault key's public key is that HSM key's.
	tok := im.Token.Identity()
	res.HSM.Token = tok
	idHex := tag(b.Tags, TagHSMKeyID)
	if idHex == "" || tag(b.Tags, TagTokenSerial) != tok.Serial {
		return res, fmt.Errorf("%w: key %s is not tagged as imported from token serial %s (%s=%q, %s=%q): kmsbridge renews only keys it imported from this token; nothing was changed",
			ownership.ErrNotOurs, res.KeyID, tok.Serial, TagHSMKeyID, kmsimport.Excerpt(idHex), TagTokenSerial, kmsimport.Excerpt(tag(b.Tags, TagTokenSerial)))
	}
	id, err := hex.DecodeString(idHex)
	if err != nil || len(id) == 0 {
		return res, fmt.Errorf("%w: key %s's %s tag %q is not a CKA_ID: nothing was changed", ownership.ErrNotOurs, res.KeyID, TagHSMKeyID, kmsimport.Excerpt(idHex))
	}
	r := &run{im: im, req: &Request{Vault: req.Vault, KeyName: req.KeyName}, res: &Result{}}
	r.res.HSM.Token = tok
	k, err := r.im.Token.FindKey(hsm.KeySelector{ID: id}, hsm.RSAKey(0)) // by class: any private key
	if err != nil {
		if errors.Is(err, hsm.ErrKeyNotFound) {
			return res, fmt.Errorf("%w: key %s is linked to HSM key CKA_ID %s, which token %q does not hold: the master copy is gone; nothing was changed", hsm.ErrKeyNotFound, res.KeyID, idHex, tok.Label)
		}
		return res, err
	}
	r.key = k
	res.HSM.KeyLabel, res.HSM.KeyID = k.Label, k.IDHex()
	equal, sum, err := r.samePublicKey(&b)
	if err != nil {
		return res, err
	}
	if !equal {
		return res, fmt.Errorf("%w: key %s is tagged with HSM key CKA_ID %s, but its public key (SHA-256 %s) is not that key's: nothing was changed", kmsimport.ErrVerification, res.KeyID, idHex, sum)
	}
	res.Proof = Proof{MaterialConfirmed: true, PublicKeySHA256: sum, Summary: "Key Vault's public key equals the HSM key's (SPKI SHA-256 " + sum + ")"}

	// Due?
	res.NewExpires = req.Expires
	switch {
	case sameExpiry(res.Expires, req.Expires):
		res.Reason = "exp is already " + expiryText(req.Expires) + ": nothing to do"
		return res, nil
	case res.Expires == nil:
		res.Reason = "the key does not expire: nothing to renew"
		return res, nil
	case res.Expires.After(now) && res.Expires.Sub(now) > time.Duration(req.WithinDays)*24*time.Hour:
		res.Reason = fmt.Sprintf("exp %s is more than %d days away: not due", res.Expires.Format(time.RFC3339), req.WithinDays)
		return res, nil
	}
	if req.DryRun {
		res.Reason = fmt.Sprintf("would move exp from %s to %s", expiryText(res.Expires), expiryText(req.Expires))
		return res, nil
	}
	kid := azkeys.ID(res.KeyID)
	version := kid.Version()
	p, err := im.Journal.Intend(journal.Intent{Command: im.command(), Op: journalOpRenew,
		Target: map[string]string{"Vault": req.Vault, "KeyName": req.KeyName, "KeyId": res.KeyID, "TokenSerial": tok.Serial, "Expires": expiryText(req.Expires)}})
	if err != nil {
		return res, fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	attrs := &azkeys.KeyAttributes{Expires: req.Expires}
	if _, err := api.UpdateKey(noRetry(ctx), req.KeyName, version, azkeys.UpdateKeyParameters{KeyAttributes: attrs}, nil); err != nil {
		_ = p.Done(journal.ResultUnknown, nil, err)
		return res, &kmsimport.StepError{Step: "update-key", Err: kvError("UpdateKey", err), State: []string{"perhaps exp of " + res.KeyID + " (the answer was lost)"},
			Resume: "re-run the same command: it reads exp back and moves it only if it has not moved"}
	}
	if err := p.Done(journal.ResultOK, map[string]string{"KeyId": res.KeyID, "Expires": expiryText(req.Expires)}, nil); err != nil {
		return res, fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	// Read back: exp is what was asked.
	back, err := api.GetKey(ctx, req.KeyName, "", nil)
	if err != nil {
		return res, kvError("GetKey", err)
	}
	var now2 *time.Time
	if back.Attributes != nil && back.Attributes.Expires != nil {
		e := back.Attributes.Expires.UTC()
		now2 = &e
	}
	if !sameExpiry(now2, req.Expires) {
		return res, fmt.Errorf("%w: Key Vault accepted the new exp %s for %s but reads back %s", kmsimport.ErrVerification, expiryText(req.Expires), res.KeyID, expiryText(now2))
	}
	res.Renewed, res.Expires = true, now2
	res.Reason = "exp moved to " + expiryText(req.Expires)
	return res, nil
}

func sameExpiry(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Unix() == b.Unix()
}

func expiryText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
