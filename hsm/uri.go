package hsm

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/miekg/pkcs11"
	pkcs11uri "github.com/stefanberger/go-pkcs11uri"
)

// URI is a PKCS#11 URI (RFC 7512) as kmsbridge honours it: it names a
// token, and optionally a key in it, and may say which module to load
// and which file holds the PIN. The PIN itself (pin-value) is refused: a
// PIN must never be on a command line or in a file others review.
type URI struct {
	// Token attributes; every one given must match.
	Token, Serial, Manufacturer, Model string
	// Slot is slot-id, or nil.
	Slot *uint
	// Slot and library attributes (C_GetSlotInfo, C_GetInfo); every one
	// given must match.
	SlotDescription, SlotManufacturer                       string
	LibraryManufacturer, LibraryDescription, LibraryVersion string
	// Key attributes.
	Object string
	ID     []byte
	// Type is "secret-key" or "private" when given.
	Type string
	// ModulePath is the module-path query attribute.
	ModulePath string
	// PINFile is the file of the pin-source query attribute.
	PINFile string
}

// pathAttributes are the path attributes of RFC 7512 kmsbridge matches:
// all of them. Each one a URI gives must match the token, slot, library
// or key; a name not in RFC 7512 is refused rather than silently ignored,
// so a URI never selects more than its author meant.
var pathAttributes = map[string]bool{
	"token": true, "serial": true, "manufacturer": true, "model": true, "slot-id": true,
	"slot-description": true, "slot-manufacturer": true,
	"library-manufacturer": true, "library-description": true, "library-version": true,
	"object": true, "id": true, "type": true,
}

// keyAttributes are the path attributes that name a key, not a token.
var keyAttributes = []string{"object", "id", "type"}

// ParseTokenURI parses a URI that chooses a token only (--token, a
// ceremony file's token.uri). A key attribute there could not be matched
// by choosing a token, so it is refused, never ignored.
func ParseTokenURI(s string) (*URI, error) {
	u, err := ParseURI(s)
	if err != nil {
		return nil, err
	}
	path, _ := splitURI(s)
	for _, part := range path {
		name, _, _ := strings.Cut(part, "=")
		for _, k := range keyAttributes {
			if name == k {
				return nil, fmt.Errorf("PKCS#11 URI %q: %s names a key, and this URI chooses only the token: give the key's object, id and type in --key (or the key's own field), or drop %s", s, name, name)
			}
		}
	}
	return u, nil
}

// ParseURI parses s strictly. It refuses pin-value, attributes kmsbridge
// does not honour, and object types that are not keys KMS imports.
func ParseURI(s string) (*URI, error) {
	if HasPINValue(s) {
		// The URI is not quoted: it holds a PIN.
		return nil, ErrPINValueInURI
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("PKCS#11 URI %q: "+format, append([]any{s}, args...)...)
	}
	if !hasScheme(s) {
		return nil, bad("a PKCS#11 URI starts with pkcs11:, e.g. pkcs11:token=ceremony;object=payments-2026;type=secret-key")
	}
	s = "pkcs11:" + s[len("pkcs11:"):] // the scheme is case-insensitive (RFC 3986)
	// go-pkcs11uri's own check of type rejects type=secret-key (its
	// pattern of allowed types is mistyped), so type is taken out before
	// the library parses the rest, and checked here.
	path, query := splitURI(s)
	var typ string
	var rest []string
	for _, part := range path {
		if v, ok := strings.CutPrefix(part, "type="); ok {
			typ = v
			continue
		}
		rest = append(rest, part)
	}
	forLib := "pkcs11:" + strings.Join(rest, ";")
	if len(query) > 0 {
		forLib += "?" + strings.Join(query, "&")
	}
	p := pkcs11uri.New()
	if err := p.Parse(forLib); err != nil {
		return nil, bad("%v", err)
	}
	for _, part := range path {
		name, _, _ := strings.Cut(part, "=")
		if !pathAttributes[name] {
			return nil, bad("%q is not a path attribute of RFC 7512; kmsbridge matches token, serial, manufacturer, model, slot-id, slot-description, slot-manufacturer, library-manufacturer, library-description, library-version, object, id and type", name)
		}
	}
	u := &URI{}
	for _, part := range query {
		name, _, _ := strings.Cut(part, "=")
		switch name {
		case "module-path":
			u.ModulePath, _ = p.GetQueryAttribute(name, false)
		case "pin-source":
			v, _ := p.GetQueryAttribute(name, false)
			file := strings.TrimPrefix(v, "file:")
			if strings.Contains(file, ":") && !strings.HasPrefix(v, "file:") || !filepath.IsAbs(file) {
				return nil, bad("pin-source %q: give an absolute file path, as pin-source=file:/path/to/pin", v)
			}
			u.PINFile = file
		case "module-name":
			return nil, bad("module-name needs a search path kmsbridge does not guess; give module-path=/absolute/path/to/module.so, or --module")
		default:
			return nil, bad("kmsbridge does not honour the query attribute %q; it honours module-path and pin-source", name)
		}
	}
	u.Token, _ = p.GetPathAttribute("token", false)
	u.Serial, _ = p.GetPathAttribute("serial", false)
	u.Manufacturer, _ = p.GetPathAttribute("manufacturer", false)
	u.Model, _ = p.GetPathAttribute("model", false)
	if v, ok := p.GetPathAttribute("slot-id", false); ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, bad("slot-id %q is not a number", v)
		}
		slot := uint(n)
		u.Slot = &slot
	}
	u.SlotDescription, _ = p.GetPathAttribute("slot-description", false)
	u.SlotManufacturer, _ = p.GetPathAttribute("slot-manufacturer", false)
	u.LibraryManufacturer, _ = p.GetPathAttribute("library-manufacturer", false)
	u.LibraryDescription, _ = p.GetPathAttribute("library-description", false)
	if v, ok := p.GetPathAttribute("library-version", false); ok {
		if _, err := parseLibraryVersion(v); err != nil {
			return nil, bad("%v", err)
		}
		u.LibraryVersion = v
	}
	u.Object, _ = p.GetPathAttribute("object", false)
	if v, ok := p.GetPathAttribute("id", false); ok {
		u.ID = []byte(v)
	}
	if typ != "" {
		if typ != "secret-key" && typ != "private" {
			return nil, bad("type=%s: kmsbridge imports secret keys (type=secret-key) and private keys (type=private)", typ)
		}
		u.Type = typ
	}
	return u, nil
}

// splitURI splits the path and query parts of a pkcs11: URI into their
// attributes, as RFC 7512 separates them.
func splitURI(s string) (path, query []string) {
	rest := strings.TrimPrefix(s, "pkcs11:")
	p, q, _ := strings.Cut(rest, "?")
	if p != "" {
		path = strings.Split(p, ";")
	}
	if q != "" {
		query = strings.Split(q, "&")
	}
	return path, query
}

// ErrPINValueInURI is a PKCS#11 URI with a pin-value attribute. Its
// message never quotes the URI, which holds the PIN.
var ErrPINValueInURI = errors.New("the PKCS#11 URI has a pin-value attribute (the URI is not shown: it holds a PIN): " +
	"pin-value puts the PIN on the command line or in a file others read; remove it and give the PIN by " +
	"pin-source=file:/path, --pin-file, $KMSBRIDGE_PIN or the prompt, and consider changing the PIN")

// HasPINValue reports whether s, read as a PKCS#11 URI, has a pin-value
// attribute in its path or query, however it is written: in any case,
// percent-encoded (once or more: pin%2Dvalue, %70in-value, pin%252dvalue),
// with spaces, or with another separator between its words (pin_value).
// Every string that might be a URI is checked with it before it is quoted
// anywhere, so the PIN is never echoed.
func HasPINValue(s string) bool {
	rest := s
	if hasScheme(s) {
		rest = s[len("pkcs11:"):]
	}
	for _, attr := range strings.FieldsFunc(rest, func(r rune) bool { return r == ';' || r == '?' || r == '&' }) {
		name, _, _ := strings.Cut(attr, "=")
		if normalizedName(name) == "pinvalue" {
			return true
		}
	}
	return false
}

// parseLibraryVersion reads RFC 7512's library-version, "M" or "M.N"; a
// missing minor version is 0.
func parseLibraryVersion(v string) ([2]uint8, error) {
	major, minor, hasMinor := strings.Cut(v, ".")
	var out [2]uint8
	for i, f := range []string{major, minor} {
		if i == 1 && !hasMinor {
			break
		}
		n, err := strconv.ParseUint(f, 10, 8)
		if err != nil {
			return out, fmt.Errorf("library-version %q: give the version as MAJOR or MAJOR.MINOR, each 0 to 255", v)
		}
		out[i] = uint8(n)
	}
	return out, nil
}

// normalizedName is an attribute name percent-decoded until it no longer
// changes (at most a few rounds), lower-cased, with everything but
// letters and digits dropped.
func normalizedName(name string) string {
	for range 4 {
		d, err := url.PathUnescape(name)
		if err != nil || d == name {
			break
		}
		name = d
	}
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hasScheme reports whether s starts with the pkcs11: scheme, in any case.
func hasScheme(s string) bool {
	return len(s) >= len("pkcs11:") && strings.EqualFold(s[:len("pkcs11:")], "pkcs11:")
}

// HasScheme reports whether s is meant as a PKCS#11 URI: it starts with
// pkcs11:, in any case.
func HasScheme(s string) bool { return hasScheme(s) }

// HasToken reports whether the URI names a token.
func (u *URI) HasToken() bool {
	return u.Token != "" || u.Serial != "" || u.Slot != nil || u.Manufacturer != "" || u.Model != "" ||
		u.SlotDescription != "" || u.SlotManufacturer != "" ||
		u.LibraryManufacturer != "" || u.LibraryDescription != "" || u.LibraryVersion != ""
}

// HasKey reports whether the URI names a key.
func (u *URI) HasKey() bool { return u.Object != "" || len(u.ID) > 0 || u.Type != "" }

// Selector is the token selection the URI makes: every token, slot and
// library attribute it gives must match.
func (u *URI) Selector() (TokenSelector, error) {
	if u.Token == "" && u.Serial == "" && u.Slot == nil {
		return TokenSelector{}, errors.New("the PKCS#11 URI names no token: give token=LABEL, serial=SERIAL or slot-id=N")
	}
	return TokenSelector{Label: u.Token, Serial: u.Serial, Slot: u.Slot, Manufacturer: u.Manufacturer, Model: u.Model,
		SlotDescription: u.SlotDescription, SlotManufacturer: u.SlotManufacturer,
		LibraryManufacturer: u.LibraryManufacturer, LibraryDescription: u.LibraryDescription, LibraryVersion: u.LibraryVersion,
		fromURI: true}, nil
}

// KeySelector is the key selection the URI makes: every one of object, id
// and type it gives must match.
func (u *URI) KeySelector() KeySelector { return KeySelector{Label: u.Object, ID: u.ID, Type: u.Type} }

// KeyURI is the PKCS#11 URI of key k in the token id describes, in the
// form p11-kit, OpenSSL's pkcs11 provider and pkcs11-tool accept. The
// attribute order is fixed so the same key always prints the same URI.
func KeyURI(id TokenIdentity, k *Key) string {
	typ := "secret-key"
	if k.Class == pkcs11.CKO_PRIVATE_KEY {
		typ = "private"
	}
	parts := []string{
		"token=" + uriEscape(id.Label),
		"manufacturer=" + uriEscape(id.Manufacturer),
		"model=" + uriEscape(id.Model),
		"serial=" + uriEscape(id.Serial),
	}
	if k.Label != "" {
		parts = append(parts, "object="+uriEscape(k.Label))
	}
	if len(k.ID) > 0 {
		var b strings.Builder
		for _, c := range k.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
		parts = append(parts, "id="+b.String())
	}
	parts = append(parts, "type="+typ)
	return "pkcs11:" + strings.Join(parts, ";")
}

// TokenURI is the PKCS#11 URI of the token id describes.
func TokenURI(id TokenIdentity) string {
	return "pkcs11:token=" + uriEscape(id.Label) + ";manufacturer=" + uriEscape(id.Manufacturer) + ";model=" + uriEscape(id.Model) + ";serial=" + uriEscape(id.Serial)
}

// uriEscape percent-encodes a path attribute value: RFC 3986 unreserved
// characters and a few safe others stay as they are.
func uriEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("-._~:[]@!$'()*+,&", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
