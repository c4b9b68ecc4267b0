package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// sdkClient is the SDK's client, default retryer, dummy credentials.
func sdkClient(url string) *kms.Client {
	return kms.New(kms.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(url),
	})
}

// openBenchToken loads the module for tok and logs in; close both after.
// raw is the token's PKCS#11, for filling it with objects.
func openBenchToken(tok *softhsm.Token) (m *hsm.Module, tk *hsm.Token, raw hsm.PKCS11) {
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	check(err)
	m.Trace(func(p hsm.PKCS11) hsm.PKCS11 { raw = p; return p })
	tk, err = m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	check(err)
	check(tk.Login(tok.PIN))
	return m, tk, raw
}

// runFloor does, for each key, the SDK and PKCS#11 calls a kmsbridge
// import makes (the token's labels once, then per key alias lookup,
// generate, create, get parameters, wrap, import, alias, verify) in one plain loop per worker,
// p workers, no records, no steps, no checks beyond the calls' own errors.
func (b *bench) runFloor(set string, n, p int) runResult {
	tok := b.newToken()
	m, tk, _ := openBenchToken(tok)
	defer m.Close()
	defer tk.Close()
	api := sdkClient(b.emu.url)
	b.seq++
	prefix := fmt.Sprintf("fl%d", b.seq)
	work := make(chan int)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed int
	)
	start := time.Now()
	// The token's labels, read once as kmsbridge's bulk run reads them.
	labels, err := tk.Labels()
	check(err)
	for w := 0; w < p; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := floorKey(context.Background(), api, tk, labels, set, i, fmt.Sprintf("%s-%05d", prefix, i)); err != nil {
					mu.Lock()
					if failed == 0 {
						b.log.Warn("floor key failed", "error", err)
					}
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	res := runResult{seconds: time.Since(start).Seconds(), done: n - failed, failed: failed}
	b.log.Info("floor run", "set", set, "keys", n, "parallel", p, "seconds", res.seconds, "failed", failed)
	return res
}

func floorKey(ctx context.Context, api *kms.Client, tk *hsm.Token, labels map[string]int, set string, i int, label string) error {
	spec, usage, alg := keySpecOf(set, i)
	alias := "alias/" + label
	var nf *types.NotFoundException
	if _, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)}); !errors.As(err, &nf) {
		return fmt.Errorf("alias lookup: %v", err)
	}
	if labels[label] > 0 {
		return fmt.Errorf("label %q in use", label)
	}
	params := hsm.AES256()
	switch spec {
	case "HMAC_256":
		params = hsm.HMACKey(32)
	case "ECC_NIST_P256":
		params = hsm.ECKey(hsm.P256)
	}
	k, err := tk.GenerateAfterSearch(label, params, false)
	if err != nil {
		return err
	}
	ck, err := api.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpec(spec), KeyUsage: types.KeyUsageType(usage)})
	if err != nil {
		return err
	}
	id := ck.KeyMetadata.KeyId
	gp, err := api.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: id, WrappingAlgorithm: types.AlgorithmSpec(alg), WrappingKeySpec: types.WrappingKeySpec(*wrapSpec)})
	if err != nil {
		return err
	}
	pub, err := kmsimport.ParseWrappingPublicKey(gp.PublicKey, types.WrappingKeySpec(*wrapSpec))
	if err != nil {
		return err
	}
	var wrapped []byte
	if alg == "RSA_AES_KEY_WRAP_SHA_1" {
		wrapped, err = tk.WrapRSAAES(k, pub, hsm.OAEPSHA1)
	} else {
		wrapped, err = tk.WrapOAEP(k, pub, hsm.OAEPSHA1)
	}
	if err != nil {
		return err
	}
	if _, err := api.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: id, ImportToken: gp.ImportToken, EncryptedKeyMaterial: wrapped, ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire}); err != nil {
		return err
	}
	if _, err := api.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: id}); err != nil {
		return err
	}
	if _, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: id}); err != nil {
		return err
	}
	msg := []byte("kmsbridge floor check")
	switch spec {
	case "SYMMETRIC_DEFAULT":
		enc, err := api.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: msg})
		if err != nil {
			return err
		}
		_, err = api.Decrypt(ctx, &kms.DecryptInput{KeyId: id, CiphertextBlob: enc.CiphertextBlob})
		return err
	case "HMAC_256":
		if _, err := api.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: id, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256}); err != nil {
			return err
		}
		_, err := tk.HMAC(k, crypto.SHA256, msg)
		return err
	default:
		if _, err := api.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: id}); err != nil {
			return err
		}
		_, err := api.Sign(ctx, &kms.SignInput{KeyId: id, Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
		return err
	}
}
