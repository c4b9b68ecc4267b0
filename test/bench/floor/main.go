// Command floor is the baseline kmsbridge's bulk import is measured
// against: for each key it makes the same KMS and PKCS#11 calls a
// kmsbridge import makes (alias lookup, generate in the token, CreateKey,
// GetParametersForImport, wrap inside the token, ImportKeyMaterial,
// CreateAlias, DescribeKey, the proof), with p workers, each on its own
// PKCS#11 session, and nothing else: no journal, no record, no checks
// beyond the calls' own errors, no retries but the SDK's.
//
// It shares no code with kmsbridge: it is written against
// github.com/miekg/pkcs11 and the AWS SDK alone (TestFloorSharesNoCode
// fails if it imports any kmsbridge package), so what limits kmsbridge
// (its session pool, its locks, its record) cannot limit the floor, and a
// ratio against it measures kmsbridge rather than kmsbridge against
// itself.
//
//	floor -module /usr/lib/softhsm/libsofthsm2.so -token bench -endpoint-url http://127.0.0.1:PORT \
//	      -set SYMMETRIC_DEFAULT -keys 1000 -parallel 16 -prefix fl1
//
// The PIN comes from FLOOR_PIN. It prints one line of JSON: keys done,
// failed, seconds.
package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"
)

var (
	module   = flag.String("module", "/usr/lib/softhsm/libsofthsm2.so", "PKCS#11 module")
	token    = flag.String("token", "", "token label")
	endpoint = flag.String("endpoint-url", "", "KMS endpoint")
	region   = flag.String("region", "us-east-1", "KMS Region")
	set      = flag.String("set", "SYMMETRIC_DEFAULT", "SYMMETRIC_DEFAULT, or HMAC+EC (alternating HMAC_256 and ECC_NIST_P256)")
	keys     = flag.Int("keys", 100, "keys to import")
	parallel = flag.Int("parallel", 4, "workers, each with its own session")
	prefix   = flag.String("prefix", "floor", "label and alias prefix")
	wrapSpec = flag.String("wrapping-key-spec", "RSA_2048", "KMS wrapping key spec")
)

type result struct {
	Keys    int     `json:"keys"`
	Failed  int     `json:"failed"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"first_error,omitempty"`
}

func main() {
	flag.Parse()
	res, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

func run() (result, error) {
	p := pkcs11.New(*module)
	if p == nil {
		return result{}, fmt.Errorf("cannot load %s", *module)
	}
	if err := p.Initialize(); err != nil {
		return result{}, err
	}
	defer p.Finalize()
	slot, err := findSlot(p, *token)
	if err != nil {
		return result{}, err
	}
	api := kms.New(kms.Options{Region: *region, Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""), BaseEndpoint: aws.String(*endpoint)})

	start := time.Now()
	// One login for the application (PKCS#11 logs every session in), and
	// the labels in the token read once, as a bulk run reads them.
	first, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return result{}, err
	}
	if err := p.Login(first, pkcs11.CKU_USER, os.Getenv("FLOOR_PIN")); err != nil {
		return result{}, err
	}
	labels, err := tokenLabels(p, first)
	if err != nil {
		return result{}, err
	}

	work := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failed   int
		firstErr string
	)
	for w := 0; w < *parallel; w++ {
		sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return result{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer p.CloseSession(sh)
			for i := range work {
				label := fmt.Sprintf("%s-%05d", *prefix, i)
				if err := importOne(context.Background(), p, sh, api, labels, i, label); err != nil {
					mu.Lock()
					if failed == 0 {
						firstErr = label + ": " + err.Error()
					}
					failed++
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < *keys; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	p.CloseSession(first)
	return result{Keys: *keys - failed, Failed: failed, Seconds: time.Since(start).Seconds(), Error: firstErr}, nil
}

func findSlot(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, err
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token labelled %q", label)
}

func tokenLabels(p *pkcs11.Ctx, sh pkcs11.SessionHandle) (map[string]bool, error) {
	if err := p.FindObjectsInit(sh, nil); err != nil {
		return nil, err
	}
	defer p.FindObjectsFinal(sh)
	labels := map[string]bool{}
	for {
		objs, _, err := p.FindObjects(sh, 256)
		if err != nil {
			return nil, err
		}
		if len(objs) == 0 {
			return labels, nil
		}
		for _, o := range objs {
			a, err := p.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
			if err == nil {
				labels[string(a[0].Value)] = true
			}
		}
	}
}

// spec is key i's KMS key spec, usage and wrapping algorithm (one SoftHSM2
// can perform).
func spec(i int) (types.KeySpec, types.KeyUsageType, types.AlgorithmSpec) {
	if *set == "SYMMETRIC_DEFAULT" {
		return types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt, types.AlgorithmSpecRsaesOaepSha1
	}
	if i%2 == 0 {
		return types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac, types.AlgorithmSpecRsaesOaepSha1
	}
	return types.KeySpecEccNistP256, types.KeyUsageTypeSignVerify, types.AlgorithmSpecRsaAesKeyWrapSha1
}

func importOne(ctx context.Context, p *pkcs11.Ctx, sh pkcs11.SessionHandle, api *kms.Client, labels map[string]bool, i int, label string) error {
	keySpec, usage, alg := spec(i)
	alias := "alias/" + label
	var nf *types.NotFoundException
	if _, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)}); !errors.As(err, &nf) {
		return fmt.Errorf("alias lookup: %v", err)
	}
	if labels[label] {
		return fmt.Errorf("label %q in use", label)
	}
	key, pubKey, err := generate(p, sh, keySpec, label)
	if err != nil {
		return err
	}
	ck, err := api.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: keySpec, KeyUsage: usage})
	if err != nil {
		return err
	}
	id := ck.KeyMetadata.KeyId
	gp, err := api.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: id, WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpec(*wrapSpec)})
	if err != nil {
		return err
	}
	wrapped, err := wrap(p, sh, key, gp.PublicKey, alg == types.AlgorithmSpecRsaAesKeyWrapSha1)
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
	return prove(ctx, p, sh, api, id, keySpec, key, pubKey)
}

// generate makes the key in the token with the attributes kmsbridge sets:
// a sensitive token object that leaves the token only wrapped.
func generate(p *pkcs11.Ctx, sh pkcs11.SessionHandle, spec types.KeySpec, label string) (key, pub pkcs11.ObjectHandle, err error) {
	common := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	switch spec {
	case types.KeySpecSymmetricDefault:
		key, err = p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, append(common,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32)))
	case types.KeySpecHmac256:
		key, err = p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}, append(common,
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32), pkcs11.NewAttribute(pkcs11.CKA_SIGN, true)))
	default:
		p256 := []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
		pub, key, err = p.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_EC_KEY_PAIR_GEN, nil)},
			[]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, p256), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true), pkcs11.NewAttribute(pkcs11.CKA_LABEL, label)},
			append(common, pkcs11.NewAttribute(pkcs11.CKA_SIGN, true)))
	}
	return key, pub, err
}

// wrap wraps key under the KMS wrapping public key inside the token:
// RSA-OAEP SHA-1, or RSA-AES composed as kmsbridge composes it on tokens
// without CKM_RSA_AES_KEY_WRAP (a one-use AES key, RFC 5649, OAEP).
func wrap(p *pkcs11.Ctx, sh pkcs11.SessionHandle, key pkcs11.ObjectHandle, der []byte, rsaAES bool) ([]byte, error) {
	parsed, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, err
	}
	rsaPub, ok := parsed.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the wrapping key is not RSA")
	}
	n, e := rsaPub.N.Bytes(), big.NewInt(int64(rsaPub.E)).Bytes()
	wk, err := p.CreateObject(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_MODULUS, n), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, e),
	})
	if err != nil {
		return nil, err
	}
	defer p.DestroyObject(sh, wk)
	oaep := []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.NewOAEPParams(pkcs11.CKM_SHA_1, pkcs11.CKG_MGF1_SHA1, pkcs11.CKZ_DATA_SPECIFIED, nil))}
	if !rsaAES {
		return p.WrapKey(sh, oaep, wk, key)
	}
	eph, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY), pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true), pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
	})
	if err != nil {
		return nil, err
	}
	defer p.DestroyObject(sh, eph)
	kwp, err := p.WrapKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, eph, key)
	if err != nil {
		return nil, err
	}
	head, err := p.WrapKey(sh, oaep, wk, eph)
	if err != nil {
		return nil, err
	}
	return append(head, kwp...), nil
}

// prove makes the proof a kmsbridge import makes: an Encrypt/Decrypt
// round trip, the token's HMAC beside KMS's, or KMS's public key beside
// the token's.
func prove(ctx context.Context, p *pkcs11.Ctx, sh pkcs11.SessionHandle, api *kms.Client, id *string, spec types.KeySpec, key, pub pkcs11.ObjectHandle) error {
	msg := []byte("kmsbridge floor check")
	switch spec {
	case types.KeySpecSymmetricDefault:
		enc, err := api.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: msg})
		if err != nil {
			return err
		}
		_, err = api.Decrypt(ctx, &kms.DecryptInput{KeyId: id, CiphertextBlob: enc.CiphertextBlob})
		return err
	case types.KeySpecHmac256:
		mac, err := api.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: id, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
		if err != nil {
			return err
		}
		if err := p.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, key); err != nil {
			return err
		}
		own, err := p.Sign(sh, msg)
		if err != nil {
			return err
		}
		if string(own) != string(mac.Mac) {
			return errors.New("KMS's HMAC differs from the token's")
		}
		return nil
	default:
		if _, err := api.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: id}); err != nil {
			return err
		}
		_, err := p.GetAttributeValue(sh, pub, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
		return err
	}
}
