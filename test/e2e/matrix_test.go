package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the support matrix in README.md from TestMatrix")

// matrixToken is a software token kmsbridge is run against in the matrix.
type matrixToken struct {
	name string
	env  []string
	args []string
	// pads: the token zero-pads before RFC 5649 (SoftHSM2 2.6).
	pads bool
	// adapts: the token rejects CKA_WRAP_WITH_TRUSTED, so the result must
	// say it was left out (opencryptoki).
	adapts bool
}

func softHSMForMatrix(t *testing.T) matrixToken {
	tok := softhsm.NewTestToken(t, "matrix")
	return matrixToken{
		name: "SoftHSM2 2.6",
		env:  []string{tok.Environ(), "KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PIN=" + tok.PIN},
		args: []string{"--token-label", tok.Label},
		pads: true,
	}
}

func nssForMatrix(t *testing.T) matrixToken {
	tok := softhsm.NewNSSTestToken(t)
	return matrixToken{
		name: "NSS softokn 3",
		env:  []string{"KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PKCS11_MODULE_PARAMS=" + tok.Params, "KMSBRIDGE_PIN=" + tok.PIN},
		args: []string{"--token-label", tok.Label},
	}
}

func ockForMatrix(t *testing.T) matrixToken {
	tok := softhsm.NewOCKTestToken(t, "matrix")
	return matrixToken{
		name:   "opencryptoki 3.8 soft token",
		env:    []string{"KMSBRIDGE_PKCS11_MODULE=" + tok.Module, "KMSBRIDGE_PIN=" + tok.PIN},
		args:   []string{"--token-label", tok.Label},
		adapts: true,
	}
}

// p11KitProxyForMatrix is SoftHSM2 through p11-kit-proxy.so, the module
// path many distributions configure for every token.
func p11KitProxyForMatrix(t *testing.T) matrixToken {
	tok := softhsm.NewTestToken(t, "matrix")
	return matrixToken{
		name: "p11-kit proxy → SoftHSM2",
		env:  p11KitProxyEnv(t, tok),
		args: []string{"--token-label", tok.Label},
		pads: true,
	}
}

// p11KitRemoteForMatrix is SoftHSM2 served by `p11-kit server` on a Unix
// socket and reached through p11-kit-client.so, as a token on another host
// is: p11-kit's RPC carries a reduced mechanism list (docs/tokens.md).
func p11KitRemoteForMatrix(t *testing.T) matrixToken {
	tok := softhsm.NewTestToken(t, "matrix")
	srv := startP11KitServer(t, tok)
	return matrixToken{
		name: "p11-kit remote → SoftHSM2",
		env:  srv.env(),
		args: []string{"--token-label", tok.Label},
		pads: true,
	}
}

// cell is one token × key spec × wrapping algorithm × wrapping key spec.
// wantErr empty means the import must succeed and verify; otherwise it
// must fail before any KMS key is created, with that in its message.
type cell struct {
	spec, alg, wks, usage string
	wantErr               string
}

// grid is every key spec × every wrapping algorithm, each under one
// wrapping key spec, taken in turn so all three are used.
func grid() []cell {
	wkss := []string{"RSA_2048", "RSA_3072", "RSA_4096"}
	var cells []cell
	for _, spec := range awskms.KeySpecs {
		for _, w := range awskms.Wrappings {
			c := cell{spec: string(spec.Name), alg: string(w.Algorithm), wks: wkss[len(cells)%3]}
			switch c.spec {
			case "RSA_3072":
				c.usage = "ENCRYPT_DECRYPT"
			case "ECC_NIST_P384":
				c.usage = "KEY_AGREEMENT"
			}
			cells = append(cells, c)
		}
	}
	return cells
}

// kmsRefuses is KMS's own rule for a cell, the same on every token: RSA
// private keys need RSA-AES, and RSA-OAEP alone must fit the material.
func kmsRefuses(c cell) string {
	spec, _ := awskms.ParseKeySpec(c.spec)
	w, _ := awskms.ParseWrappingAlgorithm(c.alg)
	wks, _ := awskms.ParseWrappingKeySpec(c.wks)
	err := awskms.CheckWrapping(spec, w, wks)
	switch {
	case err == nil:
		return ""
	case strings.Contains(err.Error(), "too large for RSA-OAEP alone"):
		return "too large for RSA-OAEP alone"
	}
	return "does not fit " + c.alg + " under an " + c.wks
}

func isAsym(spec string) bool {
	return strings.HasPrefix(spec, "RSA_") || strings.HasPrefix(spec, "ECC_")
}

// What each token does with a cell KMS accepts (docs/tokens.md).

func softHSMExpects(c cell) string {
	switch {
	case strings.HasPrefix(c.alg, "RSAES_OAEP_SHA_256"):
		return "cannot wrap with RSA-OAEP SHA-256"
	case strings.HasPrefix(c.alg, "RSA_AES_KEY_WRAP_SHA_256"):
		return "cannot wrap with RSA-AES key wrap with OAEP SHA-256"
	case c.spec == "HMAC_224" && strings.HasPrefix(c.alg, "RSA_AES"):
		return "zero-pads it to a multiple of 8 bytes"
	case isAsym(c.spec) && strings.HasPrefix(c.alg, "RSAES_OAEP"):
		return "C_WrapKey returned CKR_KEY_NOT_WRAPPABLE"
	}
	return ""
}

func nssExpects(c cell) string {
	if c.spec == "ECC_SECG_P256K1" {
		return "cannot do generation of EC secp256k1"
	}
	return ""
}

// p11KitRemoteExpects: SoftHSM2 through p11-kit 0.24's RPC, which forwards
// no CKM_SHA224_HMAC and no CKM_AES_KEY_WRAP_PAD (docs/tokens.md).
func p11KitRemoteExpects(c cell) string {
	switch {
	case c.spec == "HMAC_224":
		return "cannot do the HMAC-224 proof"
	case strings.HasPrefix(c.alg, "RSA_AES"):
		return "lists no AES key wrap with padding"
	}
	return softHSMExpects(c)
}

func ockExpects(c cell) string {
	switch {
	case strings.HasPrefix(c.spec, "ECC_"):
		return "cannot do generation of EC"
	case c.spec == "HMAC_224":
		return "cannot do the HMAC-224 proof"
	case strings.HasPrefix(c.alg, "RSA_AES"):
		return "lists no AES key wrap with padding"
	}
	return ""
}

// cellsFor is the grid with what tok is expected to do with each cell.
func cellsFor(expects func(cell) string) []cell {
	cells := grid()
	for i := range cells {
		if cells[i].wantErr = kmsRefuses(cells[i]); cells[i].wantErr == "" {
			cells[i].wantErr = expects(cells[i])
		}
	}
	return cells
}

// TestMatrix imports every cell, verifies it through KMS, and decodes
// every wrapped blob independently with OpenSSL: the OAEP part with the
// intended hash (and not with the other, so a token that silently used
// SHA-1 is caught), the RFC 5649 part with openssl enc -id-aes256-wrap-pad,
// and the PKCS#8 with openssl pkey.
func TestMatrix(t *testing.T) {
	t.Parallel()
	m := &matrix{results: map[string]map[string]string{}}
	// Two emulators for every cell, strict and lenient; each cell runs in a
	// Region of its own, forgotten when the cell ends (newScope). The
	// Region's wrapping key pair then goes back to the test key cache
	// (TestMain) for the next cell: the matrix generates one pair per size
	// and starts two emulators, not one per cell.
	strict, lenient := startEmulator(t), startEmulator(t, "--lenient-pkcs8-padding")
	for _, tc := range []struct {
		tok   func(*testing.T) matrixToken
		cells []cell
	}{{softHSMForMatrix, cellsFor(softHSMExpects)}, {nssForMatrix, cellsFor(nssExpects)}, {ockForMatrix, cellsFor(ockExpects)},
		{p11KitProxyForMatrix, cellsFor(softHSMExpects)}, {p11KitRemoteForMatrix, cellsFor(p11KitRemoteExpects)}} {
		tok := tc.tok(t)
		for _, c := range tc.cells {
			m.add(tok.name, c)
		}
		// Each token's cells run one after another, beside the other
		// tokens' (each its own token, every cell its own Region): the
		// matrix was the e2e package's longest test, and its tail.
		t.Run(tok.name, func(t *testing.T) {
			t.Parallel()
			for i, c := range tc.cells {
				// The lenient switch tolerates SoftHSM2 2.6's zero padding
				// after PKCS#8 (software-tokens.md); it is used for
				// SoftHSM2's asymmetric cells only.
				emu := strict
				asym := strings.HasPrefix(c.spec, "RSA_") || strings.HasPrefix(c.spec, "ECC_")
				if tok.pads && asym {
					emu = lenient
				}
				t.Run(fmt.Sprintf("%s/%s/%s", c.spec, c.alg, c.wks), func(t *testing.T) {
					runCell(t, newScope(t, emu), tok, c, fmt.Sprintf("m%d", i))
				})
			}
		})
	}
	// The table README.md shows is the cells' expectations (m), checked
	// here while the cells run.
	checkReadmeMatrix(t, m.rows())
}

// runCell imports cell c in the Region of sc, which no other cell uses
// meanwhile, and checks the outcome.
func runCell(t *testing.T, sc *scope, tok matrixToken, c cell, label string) {
	args := append([]string{sc.env(), "import", "--output", "json", "--endpoint-url", sc.URL, "--allow-endpoint", sc.URL, "--key-label", label, "--generate",
		"--key-spec", c.spec, "--wrapping-algorithm", c.alg, "--wrapping-key-spec", c.wks, "--no-expiry"}, tok.args...)
	if c.usage != "" {
		args = append(args, "--key-usage", c.usage)
	}
	before := sc.keyCount(t)
	r := runBinary(t, tok.env, args...)
	if c.wantErr != "" {
		if r.Code != 2 && r.Code != 3 {
			t.Errorf("exit %d, want 2 or 3 (refused before any change)", r.Code)
		}
		if !strings.Contains(r.Stderr, c.wantErr) {
			t.Errorf("stderr lacks %q:\n%s", c.wantErr, r.Stderr)
		}
		if after := sc.keyCount(t); after != before {
			t.Errorf("an unsupported cell created a KMS key (%d -> %d)", before, after)
		}
		return
	}
	if r.Code != 0 {
		t.Fatalf("exit %d\n%s", r.Code, r.Stderr)
	}
	var res awskms.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("no JSON result: %v\n%s", err, r.Stdout)
	}
	if res.KeySpec != c.spec || res.WrappingAlgorithm != c.alg || res.WrappingKeySpec != c.wks || res.KeyState != "Enabled" {
		t.Errorf("result: spec %s alg %s wks %s state %s", res.KeySpec, res.WrappingAlgorithm, res.WrappingKeySpec, res.KeyState)
	}
	if c.spec != "SYMMETRIC_DEFAULT" && !res.Verification.MaterialConfirmed {
		t.Errorf("KMS did not confirm the material: %+v", res.Verification)
	}
	if tok.pads && strings.Contains(c.alg, "AES_KEY_WRAP") && !strings.HasPrefix(c.spec, "HMAC") && c.spec != "SYMMETRIC_DEFAULT" {
		if len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, " "), "zero-pads") {
			t.Errorf("no padding warning in the result: %q", res.Warnings)
		}
	}

	if adapted := strings.Join(res.HSM.Adaptations, " "); tok.adapts != strings.Contains(adapted, "CKA_WRAP_WITH_TRUSTED=false was left out") {
		t.Errorf("adaptations %q: want the CKA_WRAP_WITH_TRUSTED one exactly when the token rejects the attribute (%v)", res.HSM.Adaptations, tok.adapts)
	}

	a := sc.artifactOf(t, res.KeyId)
	if a.Outcome != "ok" || a.WrappingAlgorithm != c.alg || a.WrappingKeySpec != c.wks || !strings.Contains(a.KeyId, res.KeyId) {
		t.Fatalf("artifact: %s %s %s of key %s, want an ok import of %s", a.Outcome, a.WrappingAlgorithm, a.WrappingKeySpec, a.KeyId, res.KeyId)
	}
	material := decodeWithOpenSSL(t, a, c.alg)
	switch {
	case c.spec == "SYMMETRIC_DEFAULT":
		kcv := opensslCheckValue(t, material)
		if got := sc.checkValue(t, res.KeyId); got != kcv {
			t.Errorf("OpenSSL-decoded material has check value %s, KMS's material %s", kcv, got)
		}
		if res.HSM.KeyCheckValue != "" && res.HSM.KeyCheckValue != kcv {
			t.Errorf("OpenSSL-decoded material has check value %s, the HSM key %s", kcv, res.HSM.KeyCheckValue)
		}
	case strings.HasPrefix(c.spec, "HMAC_"):
		want := map[string]int{"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}[c.spec]
		if len(material) != want {
			t.Errorf("decoded %d bytes of HMAC key, want %d", len(material), want)
		}
	default:
		der := material[:derLength(t, material)]
		extra := material[len(der):]
		switch {
		case tok.pads && (len(extra) > 7 || len(material)%8 != 0 || len(bytes.Trim(extra, "\x00")) > 0):
			t.Errorf("after the DER: %x, expected SoftHSM2's zero padding to a multiple of 8", extra)
		case !tok.pads && len(extra) > 0:
			t.Errorf("%d bytes after the DER: %s should give exact PKCS#8", len(extra), tok.name)
		}
		pub := opensslPublicKey(t, der)
		sum := sha256.Sum256(pub)
		if hex.EncodeToString(sum[:]) != res.Verification.PublicKeySHA256 {
			t.Errorf("public key OpenSSL derives from the decoded PKCS#8 differs from the HSM's (%s)", res.Verification.PublicKeySHA256)
		}
		kp, err := sc.KMS.GetPublicKey(context.Background(), &kms.GetPublicKeyInput{KeyId: aws.String(res.KeyId)})
		if err != nil || !bytes.Equal(kp.PublicKey, pub) {
			t.Errorf("KMS GetPublicKey differs from the decoded key's public key: %v", err)
		}
	}
}

// decodeWithOpenSSL recovers the material from what KMS received, as the
// AWS guide does with OpenSSL, and checks the OAEP hash is the one claimed.
func decodeWithOpenSSL(t *testing.T, a artifact, alg string) []byte {
	t.Helper()
	md, other := "sha1", "sha256"
	if strings.HasSuffix(alg, "SHA_256") {
		md, other = "sha256", "sha1"
	}
	n := rsaModulusBytes(t, a.WrappingPrivateKeyPEM)
	oaepPart, kwpPart := a.EncryptedKeyMaterial, []byte(nil)
	if strings.HasPrefix(alg, "RSA_AES") {
		oaepPart, kwpPart = a.EncryptedKeyMaterial[:n], a.EncryptedKeyMaterial[n:]
	}
	part := a
	part.EncryptedKeyMaterial = oaepPart
	plain := opensslOAEPDecrypt(t, part, md)
	if _, err := opensslDecrypt(t, part, other); err == nil {
		t.Errorf("the OAEP part also decrypts with %s: the hash is not the one claimed (%s)", other, md)
	}
	if kwpPart == nil {
		return plain
	}
	if len(plain) != 32 {
		t.Fatalf("OAEP part holds %d bytes, want a 32-byte AES key", len(plain))
	}
	cmd := exec.Command("openssl", "enc", "-d", "-id-aes256-wrap-pad", "-K", hex.EncodeToString(plain), "-iv", "A65959A6")
	cmd.Stdin = bytes.NewReader(kwpPart)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl enc -d -id-aes256-wrap-pad: %v", err)
	}
	return out
}

func rsaModulusBytes(t *testing.T, privPEM string) int {
	t.Helper()
	cmd := exec.Command("openssl", "pkey", "-noout", "-text")
	cmd.Stdin = strings.NewReader(privPEM)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var bits int
	if _, err := fmt.Sscanf(strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]), "Private-Key: (%d bit", &bits); err != nil {
		t.Fatalf("openssl pkey -text: %v: %.80s", err, out)
	}
	return bits / 8
}

// opensslPublicKey parses PKCS#8 DER with openssl pkey (which also knows
// secp256k1) and returns the public key it derives, as DER.
func opensslPublicKey(t *testing.T, der []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "key.der")
	if err := os.WriteFile(in, der, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "pkey", "-inform", "DER", "-in", in, "-pubout", "-outform", "DER").Output()
	if err != nil {
		t.Fatalf("openssl pkey -inform DER rejects the decoded PKCS#8: %v", err)
	}
	return out
}

// matrix is the README table: a row per key spec × wrapping algorithm ×
// wrapping key spec, a column per token.
type matrix struct {
	tokens  []string
	order   []string
	results map[string]map[string]string
}

func (m *matrix) add(token string, c cell) {
	if len(m.tokens) == 0 || m.tokens[len(m.tokens)-1] != token {
		m.tokens = append(m.tokens, token)
	}
	usage := ""
	if c.usage != "" {
		usage = " (" + c.usage + ")"
	}
	row := fmt.Sprintf("%s%s | %s | %s", c.spec, usage, c.alg, c.wks)
	if m.results[row] == nil {
		m.results[row] = map[string]string{}
		m.order = append(m.order, row)
	}
	result := "✅"
	if c.wantErr != "" {
		result = "refused: " + c.wantErr
	}
	m.results[row][token] = result
}

func (m *matrix) rows() []string {
	head := "| key spec | wrapping algorithm | wrapping key |"
	sep := "|---|---|---|"
	for _, tok := range m.tokens {
		head += " " + tok + " |"
		sep += "---|"
	}
	out := []string{head, sep}
	for _, row := range m.order {
		line := "| " + row + " |"
		for _, tok := range m.tokens {
			r := m.results[row][tok]
			if r == "" {
				r = "—"
			}
			line += " " + r + " |"
		}
		out = append(out, line)
	}
	return out
}

const (
	matrixBegin = "<!-- support-matrix:begin (generated: go test ./test/e2e -run TestMatrix -args -update-readme) -->"
	matrixEnd   = "<!-- support-matrix:end -->"
)

// checkReadmeMatrix keeps the README's support matrix equal to the cells
// this test ran: it fails when they differ, or rewrites it with -update-readme.
func checkReadmeMatrix(t *testing.T, rows []string) {
	t.Helper()
	path := filepath.Join("..", "..", "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	table := strings.Join(rows, "\n")
	readme := string(b)
	i, j := strings.Index(readme, matrixBegin), strings.Index(readme, matrixEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q section", matrixBegin, matrixEnd)
	}
	current := strings.TrimSpace(readme[i+len(matrixBegin) : j])
	if current == table {
		return
	}
	if !*updateReadme {
		t.Errorf("README.md's support matrix differs from the cells TestMatrix ran; run: go test ./test/e2e -run TestMatrix -args -update-readme")
		return
	}
	readme = readme[:i+len(matrixBegin)] + "\n" + table + "\n" + readme[j:]
	if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
}

// derLength is the length of the DER SEQUENCE at the start of b.
func derLength(t *testing.T, b []byte) int {
	t.Helper()
	if len(b) < 2 || b[0] != 0x30 {
		t.Fatalf("decoded material is not a DER SEQUENCE: % x", b[:min(len(b), 8)])
	}
	if b[1] < 0x80 {
		return 2 + int(b[1])
	}
	n, l := int(b[1]&0x7f), 0
	for _, c := range b[2 : 2+n] {
		l = l<<8 | int(c)
	}
	if 2+n+l > len(b) {
		t.Fatalf("DER length %d exceeds the %d decoded bytes", 2+n+l, len(b))
	}
	return 2 + n + l
}
