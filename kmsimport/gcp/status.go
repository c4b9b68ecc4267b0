package gcp

import (
	"context"
	"encoding/hex"
	"fmt"
	"path"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// ReadTarget reads, changing nothing, what Cloud KMS holds at req's
// crypto key for status: one row per imported version (its state,
// algorithm, protection level and import job with the job's state), or
// one row saying the key or its versions are missing. hsmKeyID (hex,
// "" when the token was not read) and tokenSerial are the HSM key the
// target should hold; the crypto key is linked to it when its labels
// name both.
func ReadTarget(ctx context.Context, api API, req Request, hsmKeyID, hsmKeyLabel, tokenSerial string) ([]kmsimport.StatusTarget, error) {
	base := kmsimport.StatusTarget{Cloud: "gcp", Target: req.key(), Location: req.ring(), HSMKeyID: hsmKeyID, HSMKeyLabel: hsmKeyLabel}
	ck, err := api.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: req.key()})
	if isCode(err, codes.NotFound) {
		base.State, base.Problem = "missing", kmsimport.ProblemTargetMissing
		base.Note = "Cloud KMS has no such crypto key: nothing was imported into it"
		base.Fix = "run the ceremony (or import --cloud gcp) that imports into it"
		return []kmsimport.StatusTarget{base}, nil
	}
	if err != nil {
		return nil, explain("GetCryptoKey", err)
	}
	base.ProtectionLevel = ck.GetVersionTemplate().GetProtectionLevel().String()
	linkedID := ck.Labels[LabelHSMKeyID]
	if base.HSMKeyID == "" {
		base.HSMKeyID = linkedID
	}
	base.Linked = linkedID != "" && sameLabels(ck.Labels, base.HSMKeyID, tokenSerial)
	var out []kmsimport.StatusTarget
	it := api.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: req.key()})
	for {
		v, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, explain("ListCryptoKeyVersions", err)
		}
		if v.ImportJob == "" {
			continue // made by Cloud KMS, not imported: no HSM key behind it
		}
		t := base
		t.Target, t.State, t.KeySpec, t.ProtectionLevel, t.ImportJob = v.Name, v.State.String(), v.Algorithm.String(), v.ProtectionLevel.String(), path.Base(v.ImportJob)
		if j, err := api.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: v.ImportJob}); err == nil {
			t.ImportJobState = j.State.String()
		}
		switch {
		case !t.Linked:
			t.Problem = kmsimport.ProblemTargetNotLinked
			t.Note = fmt.Sprintf("the crypto key's labels (%s=%q, %s=%q) do not name HSM key %s on token %s", LabelHSMKeyID, kmsimport.Excerpt(linkedID), LabelTokenSerial, kmsimport.Excerpt(ck.Labels[LabelTokenSerial]), base.HSMKeyID, tokenSerial)
			t.Fix = "check who imported into it; kmsbridge imports only into crypto keys it labelled"
		case v.State == kmspb.CryptoKeyVersion_DESTROYED || v.State == kmspb.CryptoKeyVersion_IMPORT_FAILED:
			t.Problem = kmsimport.ProblemTargetNotEnabled
			t.Note = "the version holds no material: " + v.State.String()
			t.Fix = fmt.Sprintf("re-import the same material from the HSM: kmsbridge import --cloud gcp --crypto-key %s --hsm-key-id %s --crypto-key-version %s (with the token and endpoint flags)", req.key(), base.HSMKeyID, path.Base(v.Name))
		case v.State == kmspb.CryptoKeyVersion_DISABLED || v.State == kmspb.CryptoKeyVersion_DESTROY_SCHEDULED:
			t.Problem = kmsimport.ProblemTargetNotEnabled
			t.Note = "the version cannot be used: " + v.State.String()
			t.Fix = "enable it (or cancel its destruction) in Cloud KMS if it is still meant to be used"
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		base.State, base.Problem = "no imported version", kmsimport.ProblemTargetMissing
		base.Note = "the crypto key exists but no version was imported into it"
		base.Fix = "run the ceremony (or import --cloud gcp) again: it finishes the import"
		out = append(out, base)
	}
	return out, nil
}

// sameLabels says whether labels link a crypto key to HSM key idHex on
// the token with serial, as the import labels it.
func sameLabels(labels map[string]string, idHex, serial string) bool {
	id, err := hex.DecodeString(idHex)
	if err != nil {
		return false
	}
	r := &run{key: &hsm.Key{ID: id}, res: &Result{HSM: HSMKey{Token: hsm.TokenIdentity{Serial: serial}}}}
	want := r.labels()
	return labels[LabelHSMKeyID] == want[LabelHSMKeyID] && (serial == "" || labels[LabelTokenSerial] == want[LabelTokenSerial])
}
