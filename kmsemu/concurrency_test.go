package kmsemu

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestConcurrentImports runs whole import flows in parallel, so that the
// lock GetParametersForImport drops while it draws a wrapping key is
// exercised (run with -race).
func TestConcurrentImports(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	const n = 6
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.flow(i)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, err := e.kms.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil || len(list.Keys) != n {
		t.Fatalf("ListKeys = %d keys, %v; want %d", len(list.Keys), err, n)
	}
}

// flow is one import and round trip; it reports instead of failing, as it
// runs outside the test goroutine.
func (e *env) flow(i int) error {
	created, err := e.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		return err
	}
	keyID := created.KeyMetadata.KeyId
	alg := allWrappingAlgorithms[i%len(allWrappingAlgorithms)]
	p, err := e.kms.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: keyID, WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	if err != nil {
		return err
	}
	material := bytes.Repeat([]byte{byte(i + 1)}, 32)
	blob, err := wrapMaterial(p.PublicKey, alg, material)
	if err != nil {
		return err
	}
	_, err = e.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: keyID, ImportToken: p.ImportToken, EncryptedKeyMaterial: blob,
		ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	if err != nil {
		return fmt.Errorf("flow %d ImportKeyMaterial: %w", i, err)
	}
	msg := []byte(fmt.Sprintf("message %d", i))
	enc, err := e.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: keyID, Plaintext: msg})
	if err != nil {
		return err
	}
	dec, err := e.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: aws.String(aws.ToString(keyID))})
	if err != nil {
		return err
	}
	if !bytes.Equal(dec.Plaintext, msg) {
		return fmt.Errorf("flow %d: decrypted %q", i, dec.Plaintext)
	}
	return nil
}
