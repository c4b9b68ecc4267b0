package aws

import (
	"context"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// The split's upload re-imports any generation of a rotated key's
// material as import does: checkKMS finds, by the key's tags, the
// material the wrapped file's HSM key backs (materialOfKey), so
// importInput names it (EXISTING_KEY_MATERIAL with its KeyMaterialId)
// and createKey leaves the first generation's link tags in place. What
// differs is the proof: upload has no HSM, so it checks KMS against the
// evidence the wrap gathered.

// verifyUpload is upload's verify step. A re-import that brings back one
// material of a rotated key whose other deleted or expired materials keep
// it PendingImport succeeds and says which imports make the key usable
// again (othersMissing), as import does; otherwise KMS is checked against
// the wrap's evidence.
func (r *run) verifyUpload(w *kmsimport.Wrapped, spec KeySpec) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if msg, err := r.othersMissing(ctx); msg != "" || err != nil {
			return msg, err
		}
		v, err := CheckEvidence(ctx, r.im.KMS, r.res.KeyId, spec, w.Evidence, w.HSMKey.KeyLabel)
		r.res.Verification, r.res.KeyState = v, v.KeyState
		return v.Summary, err
	}
}
