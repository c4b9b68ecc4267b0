package hsm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		name    string
		uri     string
		check   func(*URI) bool
		wantErr string
	}{
		{"ok token", "pkcs11:token=ceremony", func(u *URI) bool { return u.Token == "ceremony" && !u.HasKey() }, ""},
		{"ok key by object and type", "pkcs11:token=ceremony;object=payments-2026;type=secret-key", func(u *URI) bool {
			return u.Object == "payments-2026" && u.Type == "secret-key" && u.HasToken()
		}, ""},
		{"ok id percent-encoded", "pkcs11:id=%01%02%ff", func(u *URI) bool { return bytes.Equal(u.ID, []byte{1, 2, 0xff}) }, ""},
		{"ok escaped label", "pkcs11:token=my%20token", func(u *URI) bool { return u.Token == "my token" }, ""},
		{"ok slot-id", "pkcs11:slot-id=3", func(u *URI) bool { return u.Slot != nil && *u.Slot == 3 }, ""},
		{"ok module-path and pin-source", "pkcs11:token=t?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin", func(u *URI) bool {
			return u.ModulePath == "/usr/lib/softhsm/libsofthsm2.so" && u.PINFile == "/run/pin"
		}, ""},
		{"ok pin-source as a bare path", "pkcs11:token=t?pin-source=/run/pin", func(u *URI) bool { return u.PINFile == "/run/pin" }, ""},
		{"fail pin-value", "pkcs11:token=t?pin-value=1234", nil, "pin-value puts the PIN on the command line"},
		{"fail PIN-VALUE upper case", "pkcs11:token=t?PIN-VALUE=1234", nil, "has a pin-value attribute"},
		{"fail pin-value percent-encoded dash", "pkcs11:token=t?pin%2dvalue=1234", nil, "has a pin-value attribute"},
		{"fail pin-value percent-encoded letters", "pkcs11:token=t?%70%49%4e-Value=1234", nil, "has a pin-value attribute"},
		{"fail pin-value double-encoded", "pkcs11:token=t?pin%252Dvalue=1234", nil, "has a pin-value attribute"},
		{"fail pin-value in the path", "pkcs11:token=t;pin-value=1234", nil, "has a pin-value attribute"},
		{"fail pin_value", "pkcs11:token=t?module-path=/x.so&pin_value=1234", nil, "has a pin-value attribute"},
		{"fail pin-value upper-case scheme", "PKCS11:token=t?pin-value=1234", nil, "has a pin-value attribute"},
		{"ok upper-case scheme", "PKCS11:token=t", func(u *URI) bool { return u.Token == "t" }, ""},
		{"fail not a pkcs11 URI", "token=t", nil, "starts with pkcs11:"},
		{"fail unknown path attribute", "pkcs11:token=t;vendor-thing=x", nil, `"vendor-thing" is not a path attribute of RFC 7512`},
		{"ok library and slot attributes", "pkcs11:token=t;library-description=Soft%20lib;library-manufacturer=M;library-version=2.6;slot-description=S;slot-manufacturer=SM", func(u *URI) bool {
			return u.LibraryDescription == "Soft lib" && u.LibraryManufacturer == "M" && u.LibraryVersion == "2.6" && u.SlotDescription == "S" && u.SlotManufacturer == "SM"
		}, ""},
		{"fail library-version not a version", "pkcs11:token=t;library-version=2.x", nil, "library-version"},
		{"fail library-version out of range", "pkcs11:token=t;library-version=256", nil, "0 to 255"},
		{"fail unknown query attribute", "pkcs11:token=t?foo=bar", nil, `does not honour the query attribute "foo"`},
		{"fail module-name", "pkcs11:token=t?module-name=softhsm2", nil, "give module-path"},
		{"fail relative module-path", "pkcs11:token=t?module-path=lib.so", nil, "must be absolute"},
		{"fail relative pin-source", "pkcs11:token=t?pin-source=pin.txt", nil, "absolute file path"},
		{"fail public key type", "pkcs11:object=k;type=public", nil, "kmsbridge imports secret keys"},
		{"fail data type", "pkcs11:object=k;type=cert", nil, "kmsbridge imports secret keys"},
		{"fail slot-id not a number", "pkcs11:slot-id=x", nil, "slot-id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseURI(tt.uri)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURI(%q) = %v, want error with %q", tt.uri, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "1234") {
					t.Errorf("the error repeats the PIN: %v", err)
				}
				return
			}
			if err != nil || !tt.check(u) {
				t.Fatalf("ParseURI(%q) = %+v, %v", tt.uri, u, err)
			}
		})
	}
}

func TestKeyURIRoundTrips(t *testing.T) {
	id := TokenIdentity{Label: "cere mony", Manufacturer: "SoftHSM project", Model: "SoftHSM v2", Serial: "7b95"}
	k := &Key{Label: "payments/2026", ID: []byte{0x01, 0xab}, Class: pkcs11.CKO_SECRET_KEY}
	s := KeyURI(id, k)
	if want := "pkcs11:token=cere%20mony;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;serial=7b95;object=payments%2F2026;id=%01%AB;type=secret-key"; s != want {
		t.Errorf("KeyURI = %s, want %s", s, want)
	}
	u, err := ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	if u.Token != id.Label || u.Manufacturer != id.Manufacturer || u.Object != k.Label || !bytes.Equal(u.ID, k.ID) || u.Type != "secret-key" {
		t.Errorf("parsed back %+v", u)
	}
	sel, err := u.Selector()
	ok, err1 := sel.matches(nil, 0, id)
	other, err2 := sel.matches(nil, 0, TokenIdentity{Label: "cere mony", Manufacturer: "other"})
	if err != nil || err1 != nil || err2 != nil || !ok || other {
		t.Errorf("selector %+v, %v: must match the token and only it", sel, err)
	}
}

func TestURISelectorNeedsAToken(t *testing.T) {
	u, err := ParseURI("pkcs11:object=k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Selector(); err == nil || !strings.Contains(err.Error(), "names no token") {
		t.Errorf("Selector() = %v, want 'names no token'", err)
	}
}

// TestParseTokenURIRefusesKeyAttributes: a URI that chooses a token cannot
// match object, id or type, so they are refused, never ignored.
func TestParseTokenURIRefusesKeyAttributes(t *testing.T) {
	for _, s := range []string{"pkcs11:token=t;object=no-such", "pkcs11:token=t;id=%01", "pkcs11:token=t;type=private"} {
		if _, err := ParseTokenURI(s); err == nil || !strings.Contains(err.Error(), "names a key") {
			t.Errorf("ParseTokenURI(%q) = %v, want refused as naming a key", s, err)
		}
	}
	if u, err := ParseTokenURI("pkcs11:token=t;serial=1"); err != nil || u.Serial != "1" {
		t.Errorf("token URI: %v, %v", u, err)
	}
}

// TestTokenTextIsNormalised: space and NUL padding never reach matching,
// printing or JSON (tpm2-pkcs11 pads its model with NULs).
func TestTokenTextIsNormalised(t *testing.T) {
	ti := pkcs11.TokenInfo{Label: "ceremony                        ", Model: "SW   TPM\x00\x00\x00\x00\x00\x00\x00\x00", ManufacturerID: "IBM\x00\x00  ", SerialNumber: " 0000000000000000"}
	id := identityOf(1, ti)
	if id.Label != "ceremony" || id.Model != "SW   TPM" || id.Manufacturer != "IBM" || id.Serial != "0000000000000000" {
		t.Fatalf("identity %#v", id)
	}
	u, err := ParseURI("pkcs11:token=ceremony;model=SW%20%20%20TPM;manufacturer=IBM")
	if err != nil {
		t.Fatal(err)
	}
	sel, _ := u.Selector()
	if ok, err := sel.matches(nil, 1, id); !ok || err != nil {
		t.Errorf("model= of a NUL-padded model does not match: %v", err)
	}
	if got := objectText([]byte("key\x00\x00")); got != "key" {
		t.Errorf("objectText = %q", got)
	}
}
