package aws

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// TestGenerationStoppedInsideTheTokenIsGeneratedAgain: a generation
// stopped inside C_GenerateKey, on a token that writes a new key's
// attributes after creating its object (SoftHSM2), leaves under the label
// an object with the CKA_ID its intent chose but neither CKA_LOCAL nor
// its value. Re-running the same import destroys that leftover, closes the
// stopped intent as failed naming what it destroyed, and generates a new
// key, so the re-run finishes the job; a complete key under a forged
// intent's CKA_ID is refused, never destroyed.
func TestGenerationStoppedInsideTheTokenIsGeneratedAgain(t *testing.T) {
	leftoverID := bytes.Repeat([]byte{0x5a}, hsm.KeyIDBytes)
	stopped := func(t *testing.T, j *journal.Journal) string {
		t.Helper()
		p, err := j.Intend(journal.Intent{Command: "import", Op: "C_GenerateKey", Find: map[string]string{"KeyLabel": "k"},
			Target: map[string]string{"KeyLabel": "k", "TokenSerial": "0001", ownership.IntentKeyID: hex.EncodeToString(leftoverID)}})
		if err != nil {
			t.Fatal(err)
		}
		return p.Attempt()
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	api := func() *fakeKMS {
		return &fakeKMS{
			listAliases: noAliases,
			createKey: func(*kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
				return &kms.CreateKeyOutput{KeyMetadata: &types.KeyMetadata{KeyId: aws.String("k1")}}, nil
			},
			getParametersForImport: func(*kms.GetParametersForImportInput) (*kms.GetParametersForImportOutput, error) {
				return &kms.GetParametersForImportOutput{PublicKey: der, ImportToken: []byte("t")}, nil
			},
		}
	}
	req := Request{KeyLabel: "k", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}}

	t.Run("leftover", func(t *testing.T) {
		j := hsmSideJournal(t)
		attempt := stopped(t, j)
		leftover := &hsm.Key{Label: "k", ID: leftoverID, Class: pkcs11.CKO_SECRET_KEY, KeyType: pkcs11.CKK_AES, Sensitive: true, Extractable: true, LocalKnown: true}
		tok := &fakeToken{keys: []*hsm.Key{leftover}, wrapErr: &hsm.Error{Call: "C_WrapKey", Code: 0x69}}
		_, _ = (&Importer{KMS: api(), Token: tok, Journal: j}).Run(context.Background(), req)
		if len(tok.destroyed) != 1 || tok.destroyed[0] != "k" {
			t.Fatalf("destroyed %v, want the leftover under k", tok.destroyed)
		}
		if len(tok.generatedIDs) != 1 || bytes.Equal(tok.generatedIDs[0], leftoverID) {
			t.Fatalf("generated %x, want one new key with a new CKA_ID", tok.generatedIDs)
		}
		out, ok := j.Outcome(attempt)
		if !ok || out.Result != journal.ResultFailed || out.Facts["DestroyedObjects"] != "1" || !strings.Contains(out.Error, "destroyed") {
			t.Fatalf("the stopped intent's outcome: %+v (found %v), want failed naming 1 destroyed object", out, ok)
		}
	})
	t.Run("public half of a pair", func(t *testing.T) {
		// C_GenerateKeyPair stopped after the public key object was written
		// and before the private one: the label holds the public half alone.
		j := hsmSideJournal(t)
		p, err := j.Intend(journal.Intent{Command: "import", Op: "C_GenerateKeyPair", Find: map[string]string{"KeyLabel": "k"},
			Target: map[string]string{"KeyLabel": "k", "TokenSerial": "0001", ownership.IntentKeyID: hex.EncodeToString(leftoverID)}})
		if err != nil {
			t.Fatal(err)
		}
		half := &hsm.Key{Label: "k", ID: leftoverID, Class: pkcs11.CKO_PUBLIC_KEY, KeyType: pkcs11.CKK_EC}
		tok := &fakeToken{keys: []*hsm.Key{half}, wrapErr: &hsm.Error{Call: "C_WrapKey", Code: 0x69}}
		pair := Request{KeyLabel: "k", Generate: true, KeySpec: "ECC_NIST_P256", WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}}
		_, _ = (&Importer{KMS: api(), Token: tok, Journal: j}).Run(context.Background(), pair)
		if len(tok.destroyed) != 1 || len(tok.generatedIDs) != 1 || bytes.Equal(tok.generatedIDs[0], leftoverID) {
			t.Fatalf("destroyed %v, generated %x: want the public half destroyed and one new pair with a new CKA_ID", tok.destroyed, tok.generatedIDs)
		}
		for _, k := range tok.keys {
			if bytes.Equal(k.ID, leftoverID) {
				t.Fatalf("the public half is still in the token: %+v", k)
			}
		}
		out, ok := j.Outcome(p.Attempt())
		if !ok || out.Result != journal.ResultFailed || out.Facts["DestroyedObjects"] != "1" {
			t.Fatalf("the stopped intent's outcome: %+v (found %v), want failed naming 1 destroyed object", out, ok)
		}
	})
	t.Run("public key another tool left under the label", func(t *testing.T) {
		// The same public half with no intent of this host choosing its
		// CKA_ID (or under another one) is not kmsbridge's to destroy.
		for name, intentOp := range map[string]string{"no intent": "", "a secret key's intent": "C_GenerateKey"} {
			j := hsmSideJournal(t)
			if intentOp != "" {
				if _, err := j.Intend(journal.Intent{Command: "import", Op: intentOp, Find: map[string]string{"KeyLabel": "k"},
					Target: map[string]string{"KeyLabel": "k", "TokenSerial": "0001", ownership.IntentKeyID: hex.EncodeToString(leftoverID)}}); err != nil {
					t.Fatal(err)
				}
			}
			half := &hsm.Key{Label: "k", ID: leftoverID, Class: pkcs11.CKO_PUBLIC_KEY, KeyType: pkcs11.CKK_EC}
			tok := &fakeToken{keys: []*hsm.Key{half}}
			pair := Request{KeyLabel: "k", Generate: true, KeySpec: "ECC_NIST_P256", WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}}
			_, err := (&Importer{KMS: api(), Token: tok, Journal: j}).Run(context.Background(), pair)
			if !errors.Is(err, hsm.ErrLabelExists) || len(tok.destroyed) != 0 || len(tok.generatedIDs) != 0 {
				t.Fatalf("%s: got %v, destroyed %v, generated %x; want the label refused as taken and nothing changed", name, err, tok.destroyed, tok.generatedIDs)
			}
		}
	})
	t.Run("complete key under a forged intent", func(t *testing.T) {
		j := hsmSideJournal(t)
		stopped(t, j)
		complete := &hsm.Key{Label: "k", ID: leftoverID, Class: pkcs11.CKO_SECRET_KEY, KeyType: pkcs11.CKK_AES, ValueLen: 32, Sensitive: true, Extractable: true, LocalKnown: true}
		tok := &fakeToken{keys: []*hsm.Key{complete}}
		_, err := (&Importer{KMS: api(), Token: tok, Journal: j}).Run(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), "not proven to be kmsbridge's") {
			t.Fatalf("got %v, want the key refused as not kmsbridge's", err)
		}
		if len(tok.destroyed) != 0 || len(tok.generatedIDs) != 0 {
			t.Fatalf("destroyed %v and generated %x, want nothing", tok.destroyed, tok.generatedIDs)
		}
	})
}
