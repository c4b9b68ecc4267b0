package hsm

import (
	"fmt"

	"github.com/miekg/pkcs11"
)

// Quirks are a token's known departures from PKCS#11 in the bytes it
// produces, measured on the named token and version (docs/tokens.md): how to
// ask for RFC 5649 and what its output looks like. They live here, in one
// place, and are chosen by the token's manufacturer, model and firmware
// version. What a token can do at all is never a quirk: it is found by the
// capability probes (capabilities.go).
type Quirks struct {
	// Name is the token and version the quirks were measured on.
	Name string
	// KWPMechanism is the mechanism that gives RFC 5649 AES key wrap with
	// padding, as KMS's RSA_AES_KEY_WRAP needs. PKCS#11 3.0 names it
	// CKM_AES_KEY_WRAP_KWP; SoftHSM2 2.6 gives RFC 5649 under
	// CKM_AES_KEY_WRAP_PAD, which the standard (and NSS) define as RFC 3394
	// with PKCS#7 padding instead.
	KWPMechanism uint
	// KWPSizeQueryShort: the C_WrapKey size query for KWP reports the
	// plaintext length, too small for the output, so the wrap must be one
	// call with a buffer sized from the RFC 5649 formula (NSS softokn 3).
	KWPSizeQueryShort bool
	// PadsToBlock: before the RFC 5649 wrap the token zero-pads what it
	// wraps to a multiple of 8 bytes and counts the padding in the length,
	// so KMS unwraps a private key's PKCS#8 followed by up to 7 zero bytes,
	// and a 28-byte HMAC_224 key as 32 bytes (SoftHSM2 2.6).
	PadsToBlock bool
	// CreatesApartFromSearches: a call that creates a token object must
	// not run beside C_FindObjectsInit. SoftHSM2 2.6's search reloads
	// every token object from its file, and an object being created is
	// written attribute by attribute, its file truncated before each
	// write: a search that reads it then marks it invalid, and the create
	// fails with CKR_GENERAL_ERROR or CKR_TEMPLATE_INCONSISTENT, leaving
	// its half-made object in the token (docs/tokens.md, "Concurrency").
	// Creates beside creates, and beside calls on other objects, are safe
	// (gate.go; TestSoftHSMCreatesBesideCreates and
	// TestSoftHSMCreatesBesideObjectCalls).
	CreatesApartFromSearches bool
}

// QuirksOf returns the quirks of the token id describes. Unknown tokens are
// assumed to follow PKCS#11 3.0.
func QuirksOf(id TokenIdentity) Quirks {
	switch {
	case id.Manufacturer == "SoftHSM project" && id.Model == "SoftHSM v2" && id.Firmware == "2.6":
		return Quirks{
			Name:         "SoftHSM2 2.6",
			KWPMechanism: pkcs11.CKM_AES_KEY_WRAP_PAD,
			PadsToBlock:  true,

			CreatesApartFromSearches: true,
		}
	case id.Manufacturer == "SoftHSM project" && id.Model == "SoftHSM v2":
		// Other SoftHSM2 versions: 2.7 lists CKM_RSA_AES_KEY_WRAP but has
		// been seen to use SHA-1 OAEP when asked for SHA-256; the native
		// mechanism is only used once its output has been checked.
		return Quirks{
			Name:         "SoftHSM2 " + id.Firmware,
			KWPMechanism: pkcs11.CKM_AES_KEY_WRAP_PAD,
			PadsToBlock:  true,

			CreatesApartFromSearches: true,
		}
	case id.Manufacturer == "Mozilla Foundation":
		return Quirks{
			Name:              "NSS softokn " + id.Firmware,
			KWPMechanism:      CKM_AES_KEY_WRAP_KWP,
			KWPSizeQueryShort: true,
		}
	}
	return Quirks{
		Name:         fmt.Sprintf("%s %s (no known quirks)", id.Manufacturer, id.Model),
		KWPMechanism: CKM_AES_KEY_WRAP_KWP,
	}
}

// CKM_AES_KEY_WRAP_KWP is PKCS#11 3.0's RFC 5649 mechanism (0x210B);
// miekg/pkcs11 v1.1.2 predates it.
const CKM_AES_KEY_WRAP_KWP = 0x210B

// CKM_RSA_AES_KEY_WRAP is PKCS#11 2.40's one-call RSA-OAEP + RFC 5649 wrap.
const CKM_RSA_AES_KEY_WRAP = pkcs11.CKM_RSA_AES_KEY_WRAP

// Quirks returns the quirks of this token.
func (t *Token) Quirks() Quirks { return QuirksOf(t.id) }
