package azure

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// prove shows that the vault key b holds the HSM key's material: its
// public key equals the HSM's (RSA, EC), or it computes what the token
// computes (AES, oct.go). Any difference is ErrVerification.
func (r *run) prove(ctx context.Context, b *azkeys.KeyBundle) (Proof, error) {
	if r.params.Secret() {
		return r.proveOct(ctx, b)
	}
	equal, sum, err := r.samePublicKey(b)
	if err != nil {
		return Proof{}, err
	}
	kid := r.req.String()
	if b.Key != nil && b.Key.KID != nil {
		kid = string(*b.Key.KID)
	}
	if !equal {
		return Proof{}, fmt.Errorf("%w: key %s's public key (SHA-256 %s) is not the HSM key's: do not use it", kmsimport.ErrVerification, kid, sum)
	}
	return Proof{MaterialConfirmed: true, Method: ProofPublicKey, PublicKeySHA256: sum,
		Summary: "the vault's public key equals the HSM key's (SPKI SHA-256 " + sum + ")"}, nil
}
