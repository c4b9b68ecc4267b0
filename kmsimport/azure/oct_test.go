package azure

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// lying answers Encrypt or Decrypt with one byte changed, as a vault
// holding another key, or a path in between, would.
type lying struct {
	API
	op string
}

func (a lying) Encrypt(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.EncryptOptions) (azkeys.EncryptResponse, error) {
	r, err := a.API.Encrypt(ctx, name, version, p, o)
	if err == nil && a.op == "encrypt" {
		r.Result[0] ^= 1
	}
	return r, err
}

func (a lying) Decrypt(ctx context.Context, name, version string, p azkeys.KeyOperationParameters, o *azkeys.DecryptOptions) (azkeys.DecryptResponse, error) {
	r, err := a.API.Decrypt(ctx, name, version, p, o)
	if err == nil && a.op == "decrypt" {
		r.Result[len(r.Result)-1] ^= 1
	}
	return r, err
}

func TestOctProofFailsOnAnyDifference(t *testing.T) {
	for _, op := range []string{"encrypt", "decrypt"} {
		t.Run(op, func(t *testing.T) {
			s, kv, tok := setupAs(t, azkvemu.ManagedHSM)
			im := &Importer{KV: lying{API: kv, op: op}, Token: tok}
			res, err := im.Run(context.Background(), Request{Vault: s.URL(), ManagedHSM: true, KeyName: "aes", KeyLabel: "aes", Generate: true, KeyType: "AES-256"})
			var se *kmsimport.StepError
			if !errors.Is(err, kmsimport.ErrVerification) || !errors.As(err, &se) || se.Step != StepVerify || res.Proof.MaterialConfirmed {
				t.Fatalf("err %v, proof %+v", err, res.Proof)
			}
			if !strings.Contains(err.Error(), "not the HSM's AES key") {
				t.Errorf("err %v does not say the key is not the HSM's", err)
			}
		})
	}
}

// The generated AES master copy may encrypt and nothing else; the proof
// is the full one; the Managed HSM's attestation is said to be unverified.
func TestOctGeneratedKeyPolicyAndProof(t *testing.T) {
	s, kv, tok := setupAs(t, azkvemu.ManagedHSM)
	im := &Importer{KV: kv, Token: tok}
	res, err := im.Run(context.Background(), Request{Vault: s.URL(), ManagedHSM: true, KeyName: "aes", KeyLabel: "aes", Generate: true, KeyType: "AES-192"})
	if err != nil {
		t.Fatal(err)
	}
	if res.KeyType != string(azkeys.KeyTypeOctHSM) || res.Proof.Method != ProofEncrypt || res.Proof.Algorithm != "A192CBCPAD" || !res.Proof.MaterialConfirmed {
		t.Errorf("result %+v", res)
	}
	if !strings.HasPrefix(res.Attestation, AttestationNotVerified) || !strings.Contains(res.Attestation, "NOT verified") {
		t.Errorf("attestation %q", res.Attestation)
	}
	k, err := tok.FindKey(hsm.KeySelector{Label: "aes"}, hsm.AESKey(24))
	if err != nil || !k.Sensitive || k.ValueLen != 24 {
		t.Fatalf("HSM key %+v %v", k, err)
	}
	// It may encrypt: the proof.
	if _, err := tok.EncryptAESCBCPad(k, make([]byte, 16), []byte("x")); err != nil {
		t.Errorf("the generated key may not encrypt: %v", err)
	}
	// Key Vault refuses AES in the request check, before anything.
	req := Request{Vault: "https://contoso.vault.azure.net", KeyName: "aes", KeyLabel: "aes2", Generate: true, KeyType: "AES-256"}
	if err := req.Validate(time.Now()); !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "does not import AES") {
		t.Errorf("AES into Key Vault: %v", err)
	}
}
