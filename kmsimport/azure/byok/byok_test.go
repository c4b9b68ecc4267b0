package byok

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const samples = "testdata"

const kid = "https://contoso.vault.azure.net/keys/KEKforBYOK/eba63d27e4e34e028839b53fac905621"

func TestParseSecurosysSample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(samples, "securosys-primus-rsa4096.byok"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(data)
	if err != nil {
		t.Fatalf("a blob Azure accepted was refused: %v", err)
	}
	if b.Header.KID != "https://securosysprimuskeyvault.vault.azure.net/keys/KekForByokR4k/083cf1b67d314d15b1fa46915cde3217" {
		t.Errorf("kid %q", b.Header.KID)
	}
	if b.Generator != "Primus Java BYOK-Tool v1.2; GRIMSEL RX-2.9.0-T" {
		t.Errorf("generator %q", b.Generator)
	}
	// RSA-4096 KEK: a 512-byte OAEP block, then an RFC 5649 wrap of an
	// RSA-4096 PKCS#8 key (a little over 2300 bytes).
	rsaBlock, kw, err := b.Split(512)
	if err != nil {
		t.Fatal(err)
	}
	if len(rsaBlock) != 512 || len(kw) < 2300 || len(kw)%8 != 0 {
		t.Errorf("split %d + %d", len(rsaBlock), len(kw))
	}
	vault, name, version, err := b.KEKName()
	if err != nil || vault != "https://securosysprimuskeyvault.vault.azure.net" || name != "KekForByokR4k" || version != "083cf1b67d314d15b1fa46915cde3217" {
		t.Errorf("KEKName = %q %q %q %v", vault, name, version, err)
	}
}

func TestParseRefusesReleaseEnvelopes(t *testing.T) {
	for _, f := range []string{"kv-release-export-P256K.byok", "mhsm-release-export-P256K.byok"} {
		data, err := os.ReadFile(filepath.Join(samples, f))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(data)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "key-release") {
			t.Errorf("%s: %v, want the key-release refusal", f, err)
		}
	}
}

// Build writes what the specification and the accepted sample show: the
// same members in the same order, the same header values.
func TestBuildHasTheSampleShape(t *testing.T) {
	ct := make([]byte, 256+40)
	rand.Read(ct)
	out, err := Build(kid, ct, "kmsbridge test; SoftHSM 2.6")
	if err != nil {
		t.Fatal(err)
	}
	sample, _ := os.ReadFile(filepath.Join(samples, "securosys-primus-rsa4096.byok"))
	if !reflect.DeepEqual(memberOrder(t, out), memberOrder(t, sample)) {
		t.Errorf("members %v, sample %v", memberOrder(t, out), memberOrder(t, sample))
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	h := m["header"].(map[string]any)
	if m["schema_version"] != "1.0.0" || h["alg"] != "dir" || h["enc"] != "CKM_RSA_AES_KEY_WRAP" || h["kid"] != kid {
		t.Errorf("built %s", out)
	}
	if s := m["ciphertext"].(string); strings.ContainsAny(s, "+/=") {
		t.Errorf("ciphertext %q is not unpadded base64url", s)
	}
	b, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Ciphertext, ct) || b.Header.KID != kid {
		t.Error("round trip changed the blob")
	}
}

func memberOrder(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var keys []string
	depth := 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return keys
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' {
				depth++
				expectKey = true
			} else if v == '}' {
				depth--
				expectKey = depth > 0
			}
			continue
		case string:
			if expectKey {
				keys = append(keys, strings.Repeat(".", depth-1)+v)
				expectKey = false
				continue
			}
		}
		expectKey = depth > 0
	}
}

func TestParseRefusesWhatIsNotTheSpec(t *testing.T) {
	good := `{"schema_version":"1.0.0","header":{"kid":"` + kid + `","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"AAAA","generator":"g"}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatalf("good blob refused: %v", err)
	}
	bad := map[string]string{
		"schema":          strings.Replace(good, `"1.0.0"`, `"2.0.0"`, 1),
		"alg":             strings.Replace(good, `"dir"`, `"RSA-OAEP"`, 1),
		"enc":             strings.Replace(good, `"CKM_RSA_AES_KEY_WRAP"`, `"CKM_RSA_AES_KEY_WRAP_PAD"`, 1),
		"http kid":        strings.Replace(good, "https://", "http://", 1),
		"kid unversioned": strings.Replace(good, "/eba63d27e4e34e028839b53fac905621", "", 1),
		"kid secret":      strings.Replace(good, "/keys/", "/secrets/", 1),
		"std base64":      strings.Replace(good, `"AAAA"`, `"AA+/"`, 1),
		"empty ct":        strings.Replace(good, `"AAAA"`, `""`, 1),
		"unknown":         strings.Replace(good, `"generator"`, `"extra":1,"generator"`, 1),
		"duplicate":       strings.Replace(good, `"generator":"g"`, `"generator":"g","ciphertext":"BBBB"`, 1),
		"dup header":      strings.Replace(good, `"alg":"dir"`, `"alg":"dir","alg":"dir"`, 1),
		"trailing":        good + `{}`,
		"no header":       `{"schema_version":"1.0.0","ciphertext":"AAAA"}`,
		"not json":        `schema_version=1.0.0`,
		"too large":       strings.Replace(good, `"g"`, `"`+strings.Repeat("g", MaxSize)+`"`, 1),
	}
	for name, s := range bad {
		if _, err := Parse([]byte(s)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Parse = %v, want ErrInvalid", name, err)
		}
	}
}

func TestBuildRefusesBadInputs(t *testing.T) {
	if _, err := Build("https://v.vault.azure.net/keys/k", []byte{1}, "g"); err == nil {
		t.Error("unversioned kid accepted")
	}
	if _, err := Build(kid, nil, "g"); err == nil {
		t.Error("empty ciphertext accepted")
	}
	if _, err := Build(kid, []byte{1}, " "); err == nil {
		t.Error("empty generator accepted")
	}
}

func TestSplitRefusesWrongLengths(t *testing.T) {
	for _, n := range []int{255, 256 + 8, 256 + 17} {
		b := &Blob{Ciphertext: make([]byte, n)}
		if _, _, err := b.Split(256); err == nil {
			t.Errorf("%d bytes split as a 2048-bit block and a key wrap", n)
		}
	}
}

func FuzzParse(f *testing.F) {
	data, _ := os.ReadFile(filepath.Join(samples, "securosys-primus-rsa4096.byok"))
	f.Add(data)
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := Parse(in)
		if err != nil {
			return
		}
		out, err := Build(b.Header.KID, b.Ciphertext, b.Generator+"x")
		if err != nil {
			t.Fatalf("parsed blob does not rebuild: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("rebuilt blob does not parse: %v", err)
		}
	})
}
