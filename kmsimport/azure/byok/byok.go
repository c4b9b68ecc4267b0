// Package byok builds and parses Azure's BYOK key transfer blob (a ".byok"
// file): the JSON envelope Key Vault and Managed HSM import as `key_hsm`.
// The schema is Azure's "Bring your own key specification", section "Key
// Transfer Blob"; docs/azure-import.md cites it field by field.
//
// The package is pure: it never sees key material in the clear, only the
// ciphertext the token produced (RSA-OAEP block followed by the RFC 5649
// key wrap of the target key).
package byok

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// The values the specification fixes.
const (
	SchemaVersion = "1.0.0"
	AlgDir        = "dir"
	EncRSAAESWrap = "CKM_RSA_AES_KEY_WRAP"
	// releaseSchemaVersion is the export (Secure Key Release) envelope's
	// version: same shape, opposite direction, never a BYOK file.
	releaseSchemaVersion = "1.0"
)

// MaxSize bounds a .byok file: an RSA-4096 KEK block (512 bytes) plus
// the key wrap of an RSA-4096 PKCS#8 private key (under 2.5 KiB) is
// under 4 KiB raw, about 5.5 KiB in base64url. 64 KiB leaves room for a
// long kid and generator and refuses anything that is not a transfer blob.
const MaxSize = 64 << 10

// ErrInvalid marks a blob that is not a BYOK transfer blob as Azure
// specifies it.
var ErrInvalid = errors.New("not an Azure BYOK transfer blob")

// Header is the blob's header.
type Header struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	Enc string `json:"enc"`
}

// Blob is a parsed transfer blob.
type Blob struct {
	SchemaVersion string
	Header        Header
	// Ciphertext is the RSA-OAEP block (KEK modulus length) followed by
	// the RFC 5649 wrap of the target key under the ephemeral AES key.
	Ciphertext []byte
	Generator  string
}

// wire is the JSON form; field order follows the specification.
type wire struct {
	SchemaVersion string  `json:"schema_version"`
	Header        *Header `json:"header"`
	Ciphertext    string  `json:"ciphertext"`
	Generator     string  `json:"generator,omitempty"`
}

// Build returns the .byok file for ciphertext wrapped under the KEK kid
// (its full, versioned key identifier). Ciphertext is written as
// unpadded base64url, as Azure's SDKs encode every byte field.
func Build(kid string, ciphertext []byte, generator string) ([]byte, error) {
	if err := checkKID(kid); err != nil {
		return nil, err
	}
	if len(ciphertext) == 0 {
		return nil, fmt.Errorf("%w: empty ciphertext", ErrInvalid)
	}
	if strings.TrimSpace(generator) == "" {
		return nil, fmt.Errorf("%w: the generator (tool name and version; source HSM) is required", ErrInvalid)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(wire{
		SchemaVersion: SchemaVersion,
		Header:        &Header{KID: kid, Alg: AlgDir, Enc: EncRSAAESWrap},
		Ciphertext:    base64.RawURLEncoding.EncodeToString(ciphertext),
		Generator:     generator,
	})
	if err != nil {
		return nil, err
	}
	if buf.Len() > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a transfer blob can be", ErrInvalid, buf.Len(), MaxSize)
	}
	return buf.Bytes(), nil
}

// Parse reads a .byok file strictly: schema version 1.0.0, alg "dir",
// enc CKM_RSA_AES_KEY_WRAP, a KEK key identifier, base64url ciphertext
// (padded or not: real tools write both). Unknown members, duplicate
// members and trailing data are refused, and so is a key-release
// (export) envelope, which has the same shape but schema version "1.0".
func Parse(data []byte) (*Blob, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d a transfer blob can be", ErrInvalid, len(data), MaxSize)
	}
	if err := noDuplicates(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	switch w.SchemaVersion {
	case SchemaVersion:
	case releaseSchemaVersion:
		return nil, fmt.Errorf("%w: schema_version %q is a key-release (export) envelope, not a BYOK import file", ErrInvalid, w.SchemaVersion)
	default:
		return nil, fmt.Errorf("%w: schema_version %q, want %q", ErrInvalid, w.SchemaVersion, SchemaVersion)
	}
	if w.Header == nil {
		return nil, fmt.Errorf("%w: no header", ErrInvalid)
	}
	if w.Header.Alg != AlgDir {
		return nil, fmt.Errorf("%w: header alg %q, want %q", ErrInvalid, w.Header.Alg, AlgDir)
	}
	if w.Header.Enc != EncRSAAESWrap {
		return nil, fmt.Errorf("%w: header enc %q, want %q", ErrInvalid, w.Header.Enc, EncRSAAESWrap)
	}
	if err := checkKID(w.Header.KID); err != nil {
		return nil, err
	}
	ct, err := decodeB64URL(w.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext: %v", ErrInvalid, err)
	}
	if len(ct) == 0 {
		return nil, fmt.Errorf("%w: empty ciphertext", ErrInvalid)
	}
	return &Blob{SchemaVersion: w.SchemaVersion, Header: *w.Header, Ciphertext: ct, Generator: w.Generator}, nil
}

// Split separates the ciphertext into the RSA-OAEP block, whose length is
// the KEK's modulus length, and the RFC 5649 key wrap that follows it.
func (b *Blob) Split(modulusBytes int) (rsaBlock, keyWrap []byte, err error) {
	// The key wrap of at least one byte is 16 bytes and a multiple of 8.
	rest := len(b.Ciphertext) - modulusBytes
	if modulusBytes <= 0 || rest < 16 || rest%8 != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes of ciphertext cannot be a %d-bit RSA block and an AES key wrap", ErrInvalid, len(b.Ciphertext), modulusBytes*8)
	}
	return b.Ciphertext[:modulusBytes], b.Ciphertext[modulusBytes:], nil
}

// KEKName returns the vault URL, key name and version the kid names.
func (b *Blob) KEKName() (vault, name, version string, err error) {
	return SplitKID(b.Header.KID)
}

// SplitKID splits a versioned key identifier
// https://VAULT/keys/NAME/VERSION.
func SplitKID(kid string) (vault, name, version string, err error) {
	u, err := url.Parse(kid)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", "", fmt.Errorf("%w: kid %q is not an https key identifier", ErrInvalid, kid)
	}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) != 3 || parts[0] != "keys" || !validName(parts[1]) || parts[2] == "" || !validName(parts[2]) {
		return "", "", "", fmt.Errorf("%w: kid %q is not https://VAULT/keys/NAME/VERSION (the KEK's versioned identifier)", ErrInvalid, kid)
	}
	return "https://" + u.Host, parts[1], parts[2], nil
}

func checkKID(kid string) error {
	_, _, _, err := SplitKID(kid)
	return err
}

// validName is Key Vault's key-name pattern ^[0-9a-zA-Z-]+$, 1-127 chars.
func validName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// ValidKeyName reports whether s matches Key Vault's key-name pattern.
func ValidKeyName(s string) bool { return validName(s) }

func decodeB64URL(s string) ([]byte, error) {
	if strings.ContainsAny(s, "+/") {
		return nil, errors.New("not base64url (has '+' or '/')")
	}
	if strings.HasSuffix(s, "=") {
		return base64.URLEncoding.Strict().DecodeString(s)
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// noDuplicates refuses a JSON object with a member named twice at any
// level: encoding/json would keep the last, hiding the first.
func noDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		obj  bool
		seen map[string]bool
		key  bool // next token in an object is a key
	}
	var stack []*frame
	for {
		t, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.key {
			if d, ok := t.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].key = true
				}
				continue
			}
			k, _ := t.(string)
			if top.seen[k] {
				return fmt.Errorf("%w: member %q appears twice", ErrInvalid, k)
			}
			top.seen[k] = true
			top.key = false
			continue
		}
		switch d, _ := t.(json.Delim); d {
		case '{':
			stack = append(stack, &frame{obj: true, seen: map[string]bool{}, key: true})
			continue
		case '[':
			stack = append(stack, &frame{})
			continue
		case ']':
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
	}
}
