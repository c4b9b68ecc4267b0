package azkvemu

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/kmsbridge/kmsbridge/internal/kwp"
)

type attributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created,omitempty"`
	Updated         int64  `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays int    `json:"recoverableDays,omitempty"`
	Exportable      *bool  `json:"exportable,omitempty"`
}

type jwk struct {
	KID    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
	KeyHSM string   `json:"key_hsm,omitempty"`
	// Private members: refused in a BYOK import, never returned.
	D string `json:"d,omitempty"`
	K string `json:"k,omitempty"`
}

type bundle struct {
	Key        jwk               `json:"key"`
	Attributes attributes        `json:"attributes"`
	Tags       map[string]string `json:"tags,omitempty"`
	Managed    *bool             `json:"managed,omitempty"`
}

var b64 = base64.RawURLEncoding

// Operations each key type allows (Key Vault REST JsonWebKeyOperation;
// "import" only on the KEK and exclusive).
var opsFor = map[string][]string{
	"RSA":     {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"},
	"RSA-HSM": {"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import"},
	"EC":      {"sign", "verify"},
	"EC-HSM":  {"sign", "verify"},
	"oct-HSM": {"encrypt", "decrypt", "wrapKey", "unwrapKey"},
}

// defaultOps are a key's operations when none are asked for: all its
// type allows except import, which a KEK must ask for alone.
func defaultOps(kty string) []string {
	var ops []string
	for _, o := range opsFor[kty] {
		if o != "import" {
			ops = append(ops, o)
		}
	}
	return ops
}

func (s *Server) checkKty(kty string) *apiError {
	switch kty {
	case "RSA", "RSA-HSM", "EC", "EC-HSM":
		return nil
	case "oct-HSM":
		if s.Flavor == ManagedHSM {
			return nil
		}
		return badParameter("Property  has invalid value\r\n")
	case "":
		return badParameter("JSON Web Key: kty is missing")
	}
	return badParameter("Unsupported key type: %s", kty)
}

func checkOps(kty string, ops []string) *apiError {
	allowed := opsFor[kty]
	var bad []string
	for _, o := range ops {
		if !slices.Contains(allowed, o) {
			bad = append(bad, fmt.Sprintf("%q", o))
		}
	}
	if len(bad) > 0 {
		q := make([]string, len(allowed))
		for i, a := range allowed {
			q[i] = fmt.Sprintf("%q", a)
		}
		return badParameter("Unsupported key operation(s): %s. Supported values are %s.", strings.Join(bad, ", "), strings.Join(q, ", "))
	}
	if slices.Contains(ops, "import") && len(ops) != 1 {
		return badParameter("The key operation 'import' is mutually exclusive with all other key operations.")
	}
	return nil
}

type createReq struct {
	Kty        string            `json:"kty"`
	KeySize    *int              `json:"key_size"`
	Exponent   *int              `json:"public_exponent"`
	Crv        string            `json:"crv"`
	KeyOps     []string          `json:"key_ops"`
	Attributes *attributes       `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

func (s *Server) create(name string, body []byte) (any, *apiError) {
	var req createReq
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badParameter("The request body is not valid JSON: %v", err)
	}
	if s.Flavor == ManagedHSM && (req.Kty == "RSA" || req.Kty == "EC" || req.Kty == "oct") {
		// Every Managed HSM key is an HSM key: RSA, EC and oct are
		// created as RSA-HSM, EC-HSM and oct-HSM (recorded TestCRUD
		// RSA_MHSM/EC_MHSM, TestEncryptDecryptSymmetric).
		req.Kty += "-HSM"
	}
	if e := s.checkKty(req.Kty); e != nil {
		return nil, e
	}
	if e := checkOps(req.Kty, req.KeyOps); e != nil {
		return nil, e
	}
	if e := checkTags(req.Tags); e != nil {
		return nil, e
	}
	v := &version{name: name, kty: req.Kty, ops: req.KeyOps, tags: req.Tags}
	switch req.Kty {
	case "RSA", "RSA-HSM":
		size := 2048
		if req.KeySize != nil {
			size = *req.KeySize
		}
		if size != 2048 && size != 3072 && size != 4096 {
			return nil, badParameter("The key size %d is not supported for %s; use 2048, 3072 or 4096", size, req.Kty)
		}
		if req.Exponent != nil && *req.Exponent != 65537 {
			return nil, badParameter("public_exponent %d is not supported", *req.Exponent)
		}
		k, err := s.TestKeys.RSA(size)
		if err != nil {
			return nil, &apiError{status: 500, Code: "InternalError", Message: err.Error()}
		}
		v.rsa, v.pub = k, &k.PublicKey
		if len(v.ops) == 0 {
			v.ops = defaultOps(req.Kty)
		}
	case "EC", "EC-HSM":
		c := curve(req.Crv)
		if req.Crv == "P-256K" {
			// Recorded (TestCRUD/EC_MHSM, TestCreateECKey).
			k, err := secp256k1.GeneratePrivateKey()
			if err != nil {
				return nil, &apiError{status: 500, Code: "InternalError", Message: err.Error()}
			}
			v.pub, v.crv = k.PubKey().ToECDSA(), req.Crv
			k.Zero()
			if len(v.ops) == 0 {
				v.ops = defaultOps(req.Kty)
			}
			break
		}
		if c == nil {
			return nil, badParameter("Unsupported curve %q", req.Crv)
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, &apiError{status: 500, Code: "InternalError", Message: err.Error()}
		}
		v.pub, v.crv = &k.PublicKey, req.Crv
		if len(v.ops) == 0 {
			v.ops = defaultOps(req.Kty)
		}
	case "oct-HSM":
		size := 256
		if req.KeySize != nil {
			size = *req.KeySize
		}
		if size != 128 && size != 192 && size != 256 {
			return nil, badParameter("Property  has invalid value\r\n")
		}
		v.oct = make([]byte, size/8)
		rand.Read(v.oct)
		if len(v.ops) == 0 {
			v.ops = defaultOps(req.Kty)
		}
	}
	return s.store(v, req.Attributes), nil
}

func curve(crv string) elliptic.Curve {
	switch crv {
	case "P-256":
		return elliptic.P256()
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	return nil
}

// checkTags: at most 15 tags, names up to 512 and values up to 256
// characters (Key Vault service limits).
func checkTags(t map[string]string) *apiError {
	if len(t) > 15 {
		return badParameter("A maximum of 15 tags is allowed")
	}
	for k, v := range t {
		if len(k) > 512 || len(v) > 256 {
			return badParameter("Tag name or value too long")
		}
	}
	return nil
}

func (s *Server) store(v *version, a *attributes) *bundle {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := make([]byte, 16)
	rand.Read(id)
	v.id = hex.EncodeToString(id)
	now := s.now().Unix()
	if a != nil {
		v.attrs = *a
	}
	if v.attrs.Enabled == nil {
		t := true
		v.attrs.Enabled = &t
	}
	v.attrs.Created, v.attrs.Updated = now, now
	v.attrs.RecoveryLevel, v.attrs.RecoverableDays = "Recoverable+Purgeable", 90
	f := false
	v.attrs.Exportable = &f
	key := strings.ToLower(v.name)
	s.keys[key] = append(s.keys[key], v)
	return s.bundleOf(v)
}

func (s *Server) bundleOf(v *version) *bundle {
	b := &bundle{Key: jwk{KID: s.url + "/keys/" + v.name + "/" + v.id, Kty: v.kty, KeyOps: v.ops}, Attributes: v.attrs, Tags: v.tags}
	switch p := v.pub.(type) {
	case *rsa.PublicKey:
		b.Key.N = b64.EncodeToString(p.N.Bytes())
		b.Key.E = b64.EncodeToString(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		b.Key.Crv = v.crv
		b.Key.X = b64.EncodeToString(p.X.FillBytes(make([]byte, size)))
		b.Key.Y = b64.EncodeToString(p.Y.FillBytes(make([]byte, size)))
	}
	return b
}

func (s *Server) lookup(name, id string) (*version, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.keys[strings.ToLower(name)]
	if len(vs) == 0 {
		return nil, s.keyNotFound(name)
	}
	if id == "" {
		return vs[len(vs)-1], nil
	}
	for _, v := range vs {
		if v.id == id {
			return v, nil
		}
	}
	return nil, s.keyNotFound(name + "/" + id)
}

func (s *Server) get(name, id string) (any, *apiError) {
	v, e := s.lookup(name, id)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bundleOf(v), nil
}

type updateReq struct {
	KeyOps     []string          `json:"key_ops"`
	Attributes *attributes       `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

func (s *Server) update(name, id string, body []byte) (any, *apiError) {
	var req updateReq
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badParameter("The request body is not valid JSON: %v", err)
	}
	v, e := s.lookup(name, id)
	if e != nil {
		return nil, e
	}
	if req.KeyOps != nil {
		if e := checkOps(v.kty, req.KeyOps); e != nil {
			return nil, e
		}
	}
	if e := checkTags(req.Tags); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.KeyOps != nil {
		v.ops = req.KeyOps
	}
	if req.Tags != nil {
		v.tags = req.Tags
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			v.attrs.Enabled = a.Enabled
		}
		if a.Expires != nil {
			v.attrs.Expires = a.Expires
		}
		if a.NotBefore != nil {
			v.attrs.NotBefore = a.NotBefore
		}
	}
	v.attrs.Updated = s.now().Unix()
	return s.bundleOf(v), nil
}

// usable: enabled and inside nbf..exp (Key Vault refuses operations with
// a disabled or expired key: 403 Forbidden "Operation ... is not allowed
// on a disabled key").
func (s *Server) usable(v *version, op string) *apiError {
	now := s.now().Unix()
	if v.attrs.Enabled != nil && !*v.attrs.Enabled {
		return &apiError{status: 403, Code: "Forbidden", Message: fmt.Sprintf("Operation %s is not allowed on a disabled key.", op)}
	}
	if v.attrs.NotBefore != nil && now < *v.attrs.NotBefore {
		return &apiError{status: 403, Code: "Forbidden", Message: fmt.Sprintf("Operation %s is not allowed before the key's not-before time.", op)}
	}
	if v.attrs.Expires != nil && now >= *v.attrs.Expires {
		return &apiError{status: 403, Code: "Forbidden", Message: fmt.Sprintf("Operation %s is not allowed on an expired key.", op)}
	}
	if !slices.Contains(v.ops, op) {
		return &apiError{status: 403, Code: "Forbidden", Message: fmt.Sprintf("Operation %s is not permitted on this key.", op)}
	}
	return nil
}

type importReq struct {
	Key        *jwk              `json:"key"`
	HSM        *bool             `json:"Hsm"`
	Attributes *attributes       `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

// transferBlob is the .byok envelope as the service reads it.
type transferBlob struct {
	SchemaVersion string `json:"schema_version"`
	Header        struct {
		KID string `json:"kid"`
		Alg string `json:"alg"`
		Enc string `json:"enc"`
	} `json:"header"`
	Ciphertext string `json:"ciphertext"`
	Generator  string `json:"generator"`
}

func (s *Server) importKey(name string, body []byte) (any, *apiError) {
	var req importReq
	if err := json.Unmarshal(body, &req); err != nil || req.Key == nil {
		return nil, badParameter("The property \"key\" must be a valid JsonWebKey object.")
	}
	k := req.Key
	if k.Kty == "" {
		return nil, badParameter("JSON Web Key: kty is missing")
	}
	if k.KeyHSM == "" {
		return nil, badParameter("This emulator imports only BYOK transfer blobs (key_hsm)")
	}
	if k.D != "" || k.K != "" || k.N != "" || k.X != "" {
		return nil, badParameter("A BYOK import carries no key members besides kty, crv, key_ops and key_hsm")
	}
	kty := k.Kty
	if !strings.HasSuffix(kty, "-HSM") {
		// The CLI and SDKs name the -HSM type for BYOK (SPEC "Upload
		// key transfer blob"); a software type cannot hold a BYOK key.
		return nil, badParameter("A key_hsm import needs kty RSA-HSM, EC-HSM or oct-HSM, not %s", kty)
	}
	if e := s.checkKty(kty); e != nil {
		return nil, e
	}
	if e := checkOps(kty, k.KeyOps); e != nil {
		return nil, e
	}
	if slices.Contains(k.KeyOps, "import") {
		return nil, badParameter("A KEK cannot be imported: the key operation 'import' is only for keys generated in the HSM")
	}
	if e := checkTags(req.Tags); e != nil {
		return nil, e
	}
	raw, err := b64.DecodeString(strings.TrimRight(k.KeyHSM, "="))
	if err != nil {
		return nil, badParameter("Content of 'key_hsm' is not base64url.")
	}
	s.mu.Lock()
	s.last = append([]byte(nil), raw...)
	s.mu.Unlock()
	var blob transferBlob
	if err := json.Unmarshal(raw, &blob); err != nil {
		return nil, badParameter("The key transfer blob is not valid JSON")
	}
	if blob.SchemaVersion != "1.0.0" || blob.Header.Alg != "dir" || blob.Header.Enc != "CKM_RSA_AES_KEY_WRAP" {
		return nil, badParameter("The key transfer blob's schema_version, alg or enc is not supported")
	}
	kek, e := s.kekOf(blob.Header.KID)
	if e != nil {
		return nil, e
	}
	ct, err := base64.URLEncoding.DecodeString(padded(blob.Ciphertext))
	if err != nil {
		return nil, badParameter("The key transfer blob's ciphertext is not base64url")
	}
	material, e := unwrap(kek, ct)
	if e != nil {
		return nil, e
	}
	v := &version{name: name, kty: kty, ops: k.KeyOps, tags: req.Tags}
	if e := s.fill(v, kty, k.Crv, material); e != nil {
		return nil, e
	}
	clear(material)
	if len(v.ops) == 0 {
		v.ops = defaultOps(kty)
	}
	return s.store(v, req.Attributes), nil
}

func padded(s string) string {
	s = strings.TrimRight(s, "=")
	if n := len(s) % 4; n != 0 {
		s += strings.Repeat("=", 4-n)
	}
	return s
}

// kekOf finds the KEK a blob names: a versioned kid of this vault, an
// RSA-HSM key whose only operation is import, enabled and in its
// validity period.
func (s *Server) kekOf(kid string) (*version, *apiError) {
	rest, ok := strings.CutPrefix(kid, s.url+"/keys/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 2 || parts[1] == "" {
		return nil, badParameter("The key transfer blob's kid %q does not name a key version of this vault", kid)
	}
	v, e := s.lookup(parts[0], parts[1])
	if e != nil {
		return nil, e
	}
	if v.kty != "RSA-HSM" || v.rsa == nil || len(v.ops) != 1 || v.ops[0] != "import" {
		return nil, badParameter("The key %s is not a Key Exchange Key: it must be RSA-HSM with the single operation 'import'", kid)
	}
	if e := s.usable(v, "import"); e != nil {
		return nil, e
	}
	return v, nil
}

// unwrap undoes CKM_RSA_AES_KEY_WRAP: RSA-OAEP (SHA-1, MGF1-SHA-1, empty
// label) of an AES key, then RFC 5649 key wrap with padding.
func unwrap(kek *version, ct []byte) ([]byte, *apiError) {
	n := kek.rsa.Size()
	if len(ct) < n+16 {
		return nil, badParameter("The key transfer blob's ciphertext is too short for the KEK")
	}
	aesKey, err := rsa.DecryptOAEP(sha1.New(), nil, kek.rsa, ct[:n], nil)
	if err != nil {
		return nil, badParameter("The key transfer blob cannot be decrypted with the KEK")
	}
	defer clear(aesKey)
	if l := len(aesKey); l != 16 && l != 24 && l != 32 {
		return nil, badParameter("The key transfer blob's wrapping key has an invalid length")
	}
	m, err := kwp.Unwrap(aesKey, ct[n:])
	if err != nil {
		return nil, badParameter("The key transfer blob's key wrap does not verify")
	}
	return m, nil
}

// fill checks the unwrapped material's format against kty (PKCS#8 for
// RSA and EC, raw bytes for oct) and keeps what the vault keeps.
func (s *Server) fill(v *version, kty, crv string, m []byte) *apiError {
	if s.LenientPKCS8Padding && kty != "oct-HSM" {
		m = trimPKCS8Padding(m)
	}
	switch kty {
	case "RSA-HSM":
		k, err := x509.ParsePKCS8PrivateKey(m)
		rk, ok := k.(*rsa.PrivateKey)
		if err != nil || !ok {
			return badParameter("RSA key is not valid - cannot instantiate crypto service")
		}
		if b := rk.N.BitLen(); b != 2048 && b != 3072 && b != 4096 {
			return badParameter("The RSA key size %d is not supported; import 2048, 3072 or 4096 bits", b)
		}
		v.pub = &rk.PublicKey
	case "EC-HSM":
		if crv == "" {
			return badParameter("JSON Web Key: crv is missing")
		}
		if crv == "P-256K" {
			pub, err := parseSecp256k1PKCS8(m)
			if err != nil {
				return badParameter("EC key is not valid - the key material is not a PKCS#8 EC private key on P-256K: %v", err)
			}
			v.pub, v.crv = pub, crv
			return nil
		}
		k, err := x509.ParsePKCS8PrivateKey(m)
		ek, ok := k.(*ecdsa.PrivateKey)
		if err != nil || !ok {
			return badParameter("EC key is not valid - the key material is not a PKCS#8 EC private key")
		}
		if c := curve(crv); c == nil || c != ek.Curve {
			return badParameter("The key's curve is not %s", crv)
		}
		v.pub, v.crv = &ek.PublicKey, crv
	case "oct-HSM":
		if l := len(m); l != 16 && l != 24 && l != 32 {
			return badParameter("An oct-HSM key must be 128, 192 or 256 bits")
		}
		v.oct = slices.Clone(m)
	}
	return nil
}

type cryptReq struct {
	Alg   string `json:"alg"`
	Value string `json:"value"`
	IV    string `json:"iv"`
	AAD   string `json:"aad"`
	Tag   string `json:"tag"`
}

type cryptResp struct {
	Alg   string `json:"alg,omitempty"`
	KID   string `json:"kid"`
	Value string `json:"value"`
	IV    string `json:"iv,omitempty"`
	Tag   string `json:"tag,omitempty"`
}

var opName = map[string]string{"encrypt": "encrypt", "decrypt": "decrypt", "wrapkey": "wrapKey", "unwrapkey": "unwrapKey"}

// crypt is Managed HSM's symmetric encryption with an oct-HSM key, under
// encrypt/decrypt (and wrapkey/unwrapkey): A{128,192,256}CBC and
// A{128,192,256}CBCPAD with the caller's 16-byte IV, echoed with alg in
// the encrypt answer as recorded (TestEncryptDecryptSymmetric.json), and
// A{128,192,256}GCM with a 12-byte IV the service makes and a 16-byte tag.
// The size in the algorithm must be the key's.
func (s *Server) crypt(name, id, action string, body []byte) (any, *apiError) {
	var req cryptReq
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badParameter("The request body is not valid JSON")
	}
	v, e := s.lookup(name, id)
	if e != nil {
		return nil, e
	}
	if e := s.usable(v, opName[action]); e != nil {
		return nil, e
	}
	if v.oct == nil {
		return nil, badParameter("This emulator serves %s only for oct-HSM keys", action)
	}
	val, err := b64.DecodeString(strings.TrimRight(req.Value, "="))
	if err != nil {
		return nil, badParameter("Content of 'value' is not base64url.\r\nProperty 'value' is required.\r\n")
	}
	kid := s.url + "/keys/" + v.name + "/" + v.id
	bits := len(v.oct) * 8
	mode, ok := strings.CutPrefix(req.Alg, fmt.Sprintf("A%d", bits))
	if !ok || (mode != "GCM" && mode != "CBC" && mode != "CBCPAD") {
		return nil, badParameter("Algorithm %q is not supported for this key; use A%dCBC, A%dCBCPAD or A%dGCM", req.Alg, bits, bits, bits)
	}
	blk, _ := aes.NewCipher(v.oct)
	encrypting := action == "encrypt" || action == "wrapkey"
	if mode == "GCM" {
		g, _ := cipher.NewGCM(blk)
		aad, _ := b64.DecodeString(req.AAD)
		if encrypting {
			iv := make([]byte, 12)
			rand.Read(iv)
			out := g.Seal(nil, iv, val, aad)
			return cryptResp{Alg: req.Alg, KID: kid, Value: b64.EncodeToString(out[:len(out)-16]), IV: b64.EncodeToString(iv), Tag: b64.EncodeToString(out[len(out)-16:])}, nil
		}
		iv, err1 := b64.DecodeString(req.IV)
		tag, err2 := b64.DecodeString(req.Tag)
		if err1 != nil || err2 != nil || len(iv) != 12 || len(tag) != 16 {
			return nil, badParameter("iv and tag are required for %s", req.Alg)
		}
		out, err := g.Open(nil, iv, append(slices.Clone(val), tag...), aad)
		if err != nil {
			return nil, badParameter("Decryption failed")
		}
		return cryptResp{Alg: req.Alg, KID: kid, Value: b64.EncodeToString(out)}, nil
	}
	iv, err := b64.DecodeString(strings.TrimRight(req.IV, "="))
	if err != nil || len(iv) != aes.BlockSize {
		return nil, badParameter("A 16-byte iv is required for %s", req.Alg)
	}
	if encrypting {
		in := slices.Clone(val)
		if mode == "CBCPAD" {
			n := aes.BlockSize - len(in)%aes.BlockSize
			in = append(in, bytes.Repeat([]byte{byte(n)}, n)...)
		}
		if len(in) == 0 || len(in)%aes.BlockSize != 0 {
			return nil, badParameter("The value's length is not a multiple of the block size for %s", req.Alg)
		}
		out := make([]byte, len(in))
		cipher.NewCBCEncrypter(blk, iv).CryptBlocks(out, in)
		return cryptResp{Alg: req.Alg, KID: kid, Value: b64.EncodeToString(out), IV: b64.EncodeToString(iv)}, nil
	}
	if len(val) == 0 || len(val)%aes.BlockSize != 0 {
		return nil, badParameter("The value's length is not a multiple of the block size for %s", req.Alg)
	}
	out := make([]byte, len(val))
	cipher.NewCBCDecrypter(blk, iv).CryptBlocks(out, val)
	if mode == "CBCPAD" {
		n := int(out[len(out)-1])
		if n < 1 || n > aes.BlockSize || !bytes.Equal(out[len(out)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
			return nil, badParameter("Decryption failed")
		}
		out = out[:len(out)-n]
	}
	return cryptResp{Alg: req.Alg, KID: kid, Value: b64.EncodeToString(out)}, nil
}

// trimPKCS8Padding drops 1 to 7 zero bytes after the PKCS#8 DER: what
// SoftHSM2 2.6.1 wraps (it pads the DER to 8 bytes and counts the padding
// in the RFC 5649 length). Only with Server.LenientPKCS8Padding.
func trimPKCS8Padding(m []byte) []byte {
	if len(m) < 4 || m[0] != 0x30 {
		return m
	}
	var n, hdr int
	switch l := int(m[1]); {
	case l < 0x80:
		n, hdr = l, 2
	case l == 0x81:
		n, hdr = int(m[2]), 3
	case l == 0x82:
		n, hdr = int(m[2])<<8|int(m[3]), 4
	default:
		return m
	}
	end := hdr + n
	if end >= len(m) || len(m)-end > 7 {
		return m
	}
	for _, b := range m[end:] {
		if b != 0 {
			return m
		}
	}
	return m[:end]
}
