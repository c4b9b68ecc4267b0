package azure

import (
	"context"
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// ReadTarget reads, changing nothing, what Key Vault holds at req's key
// for status: whether it is enabled, when it expires (exp), its type, the
// Key Exchange Key it was wrapped under, and whether its tags link it to
// HSM key hsmKeyID (hex; "" when the token was not read) on tokenSerial.
func ReadTarget(ctx context.Context, api API, req Request, hsmKeyID, hsmKeyLabel, tokenSerial string) (kmsimport.StatusTarget, error) {
	t := kmsimport.StatusTarget{Cloud: "azure", Target: req.String(), Location: req.Vault, HSMKeyID: hsmKeyID, HSMKeyLabel: hsmKeyLabel}
	got, err := api.GetKey(ctx, req.KeyName, "", nil)
	if isNotFound(err) {
		t.State, t.Problem = "missing", kmsimport.ProblemTargetMissing
		t.Note = "the vault has no such key: nothing was imported into it"
		t.Fix = "run the ceremony (or import --cloud azure) that imports into it"
		return t, nil
	}
	if err != nil {
		return t, kvError("GetKey", err)
	}
	b := got.KeyBundle
	if b.Key != nil && b.Key.KID != nil {
		t.Target = string(*b.Key.KID)
	}
	if b.Key != nil && b.Key.Kty != nil {
		t.KeySpec = string(*b.Key.Kty)
		if b.Key.Crv != nil {
			t.KeySpec += " " + string(*b.Key.Crv)
		}
	}
	t.State = "Enabled"
	if b.Attributes != nil {
		if b.Attributes.Enabled != nil && !*b.Attributes.Enabled {
			t.State = "Disabled"
		}
		if b.Attributes.Expires != nil {
			e := b.Attributes.Expires.UTC()
			t.ValidTo = &e
		}
	}
	linked := tag(b.Tags, TagHSMKeyID)
	if t.HSMKeyID == "" {
		t.HSMKeyID = linked
	}
	t.Linked = linked != "" && strings.EqualFold(linked, t.HSMKeyID) && (tokenSerial == "" || tag(b.Tags, TagTokenSerial) == tokenSerial)
	kek, err := api.GetKey(ctx, req.KEKName, "", nil)
	switch {
	case isNotFound(err):
		t.KEK = req.KEKName + " (missing)"
	case err != nil:
		return t, kvError("GetKey", err)
	case kek.Key != nil && kek.Key.KID != nil:
		var ops []string
		for _, o := range kek.Key.KeyOps {
			if o != nil {
				ops = append(ops, string(*o))
			}
		}
		t.KEK = fmt.Sprintf("%s (key_ops %s)", *kek.Key.KID, strings.Join(ops, ","))
	}
	switch {
	case !t.Linked:
		t.Problem = kmsimport.ProblemTargetNotLinked
		t.Note = fmt.Sprintf("its tags (%s=%q, %s=%q) do not name HSM key %s on token %s", TagHSMKeyID, kmsimport.Excerpt(linked), TagTokenSerial, kmsimport.Excerpt(tag(b.Tags, TagTokenSerial)), t.HSMKeyID, tokenSerial)
		t.Fix = "check who imported it; kmsbridge imports only keys it tags"
	case t.State == "Disabled":
		t.Problem = kmsimport.ProblemTargetNotEnabled
		t.Note = "the key is disabled"
		t.Fix = "enable it in the vault if it is still meant to be used"
	case t.ValidTo != nil:
		// For an expiry status reports: the vault keeps the material, only
		// its exp attribute moves.
		t.Fix = fmt.Sprintf("kmsbridge renew --cloud azure --vault-url %s --key-name %s --within DAYS (with the token flags, and --endpoint-url/--allow-endpoint for your own endpoint)", req.Vault, req.KeyName)
	}
	return t, nil
}
