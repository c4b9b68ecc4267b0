package hsm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/pkcs11"
)

// Error is a failed PKCS#11 call. Its message names the call and the CKR code
// and, where the code has one meaning a user can act on, what to do:
//
//	C_Login: CKR_PIN_INCORRECT (0xa0): the PIN is wrong; the token may lock after more failures
//
// Callers test for a code with errors.As and Code, never by matching text.
type Error struct {
	// Call is the PKCS#11 function that failed, e.g. "C_WrapKey".
	Call string
	// Code is the CKR_ return value.
	Code pkcs11.Error
	// Advice says what the user can do, or is empty when nothing specific is known.
	Advice string
	// Mechanism and Attribute name the mechanism and attribute the code
	// is about, when known ("CKM_RSA_PKCS_OAEP", "CKA_WRAP_WITH_TRUSTED").
	Mechanism string
	Attribute string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s (%#x)", e.Call, ckrName(e.Code), uint(e.Code))
	if e.Mechanism != "" {
		msg += " with " + e.Mechanism
	}
	if e.Attribute != "" {
		msg += " for " + e.Attribute
	}
	if e.Advice != "" {
		msg += ": " + e.Advice
	}
	return msg
}

// Is lets errors.Is(err, pkcs11.Error(pkcs11.CKR_...)) match an *Error.
func (e *Error) Is(target error) bool {
	var code pkcs11.Error
	return errors.As(target, &code) && code == e.Code
}

// ckrName returns the symbolic name of a CKR code ("CKR_PIN_INCORRECT").
// miekg/pkcs11 keeps its name table private and only exposes it through
// Error(), formatted as "pkcs11: 0xA0: CKR_PIN_INCORRECT".
func ckrName(code pkcs11.Error) string {
	switch code {
	case CKR_NSS_CERTDB_FAILED:
		return "CKR_NSS_CERTDB_FAILED"
	case CKR_NSS_KEYDB_FAILED:
		return "CKR_NSS_KEYDB_FAILED"
	}
	s := code.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s[i+2:], "CKR_") {
		return s[i+2:]
	}
	return "CKR_VENDOR_DEFINED"
}

// NSS's vendor-defined codes for a configdir it cannot use.
const (
	CKR_NSS_CERTDB_FAILED pkcs11.Error = 0xCE534351
	CKR_NSS_KEYDB_FAILED  pkcs11.Error = 0xCE534352
)

// advice is what a user can do about a code, by call where the meaning
// depends on it. The empty call "" is the fallback for any call.
var advice = map[pkcs11.Error]map[string]string{
	pkcs11.CKR_PIN_INCORRECT: {
		"": "the PIN is wrong; the token may lock after more failures, so check the PIN before trying again",
	},
	pkcs11.CKR_PIN_LOCKED: {
		"": "the user PIN is locked after too many failures; the token's Security Officer must unlock or reset it",
	},
	pkcs11.CKR_PIN_EXPIRED: {
		"": "the PIN has expired; set a new one with the token vendor's tool",
	},
	pkcs11.CKR_PIN_LEN_RANGE: {
		"": "the PIN has a length the token does not accept",
	},
	pkcs11.CKR_USER_PIN_NOT_INITIALIZED: {
		"": "the token has no user PIN yet; its Security Officer must set one (C_InitPIN)",
	},
	pkcs11.CKR_TOKEN_NOT_PRESENT: {
		"": "no token is present in that slot",
	},
	pkcs11.CKR_DEVICE_REMOVED: {
		"": "the token was removed during the operation",
	},
	pkcs11.CKR_KEY_UNEXTRACTABLE: {
		"": "the key has CKA_EXTRACTABLE=false, so the token will never wrap it; such a key cannot be imported into KMS",
	},
	pkcs11.CKR_KEY_NOT_WRAPPABLE: {
		"": "the token refuses to wrap this key under this wrapping key (for a key with CKA_WRAP_WITH_TRUSTED=true, the wrapping key must be approved as trusted by the Security Officer; some tokens wrap only secret keys with RSA-OAEP): kmsbridge doctor lists the wrapping algorithms this token was checked to do",
	},
	pkcs11.CKR_MECHANISM_INVALID: {
		"":                  "the token does not support this mechanism",
		"C_WrapKey":         "the token does not support this mechanism for wrapping; choose another wrapping algorithm (kmsbridge doctor lists those the token can do)",
		"C_GenerateKey":     "the token cannot generate this kind of key; kmsbridge doctor lists the key specs it can",
		"C_GenerateKeyPair": "the token cannot generate this kind of key pair; kmsbridge doctor lists the key specs it can",
		"C_SignInit":        "the token cannot compute this signature or HMAC, which kmsbridge needs to prove the import",
	},
	pkcs11.CKR_MECHANISM_PARAM_INVALID: {
		"":          "the token rejects these mechanism parameters",
		"C_WrapKey": "the token rejects these mechanism parameters (often an OAEP hash it does not support); choose another wrapping algorithm",
	},
	pkcs11.CKR_FUNCTION_NOT_SUPPORTED: {
		"":                  "the token's PKCS#11 module does not implement this function",
		"C_WrapKey":         "the token cannot wrap (export) keys at all, so nothing it holds can reach KMS; use an HSM whose module implements C_WrapKey with CKM_RSA_PKCS_OAEP",
		"C_GenerateKey":     "the token cannot generate keys; use an HSM that can, or import an existing key without --generate",
		"C_GenerateKeyPair": "the token cannot generate key pairs; use an HSM that can, or import an existing key without --generate",
	},
	pkcs11.CKR_ATTRIBUTE_TYPE_INVALID: {
		"":                  "the token does not know one of the attributes asked for",
		"C_GenerateKey":     "the token does not know one of the key template's attributes; kmsbridge doctor shows which, and whether it can safely be left out",
		"C_GenerateKeyPair": "the token does not know one of the key pair templates' attributes; kmsbridge doctor shows which, and whether it can safely be left out",
	},
	pkcs11.CKR_ARGUMENTS_BAD: {
		"C_WrapKey":    "the token rejects these wrapping parameters (SoftHSM2 answers this for OAEP with SHA-256); choose RSAES_OAEP_SHA_1",
		"C_Initialize": "the module rejects the library parameters, or needs some (NSS softokn: configdir='sql:DIR' ...): check --module-params",
	},
	pkcs11.CKR_USER_TYPE_INVALID: {
		"": "this token has no user login (NSS's 'NSS Generic Crypto Services' slot, for one): choose the token that holds keys",
	},
	pkcs11.CKR_DATA_LEN_RANGE: {
		"C_WrapKey": "the key is too large for RSA-OAEP alone under this wrapping key: use a larger wrapping key, or another wrapping algorithm this token was checked to do (kmsbridge doctor lists them)",
	},
	CKR_NSS_CERTDB_FAILED: {
		"": "NSS cannot open or create the certificate database named by configdir: check the path in --module-params exists and is writable",
	},
	CKR_NSS_KEYDB_FAILED: {
		"": "NSS cannot open or create the key database named by configdir: check the path in --module-params exists and is writable",
	},
	pkcs11.CKR_USER_NOT_LOGGED_IN: {
		"": "the operation needs a logged-in user session",
	},
	pkcs11.CKR_SESSION_READ_ONLY: {
		"": "the token only allows read-only sessions; it may be write-protected",
	},
	pkcs11.CKR_TOKEN_WRITE_PROTECTED: {
		"": "the token is write-protected, so no key can be created on it",
	},
	pkcs11.CKR_DEVICE_MEMORY: {
		"": "the token is out of memory for new objects; delete unused objects",
	},
	pkcs11.CKR_TEMPLATE_INCONSISTENT: {
		"": "the token refuses the key's attribute template; its policy may forbid one of the attributes kmsbridge sets",
	},
	pkcs11.CKR_ATTRIBUTE_VALUE_INVALID: {
		"": "the token refuses one of the attribute values kmsbridge sets; its policy may forbid it",
	},
}

// newError wraps err from call into an *Error when it is a CKR code, adding
// advice. Other errors are returned with the call name prefixed.
func newError(call string, err error) error {
	if err == nil {
		return nil
	}
	var (
		te *TimeoutError
		ge *GoneError
	)
	if errors.As(err, &te) || errors.As(err, &ge) {
		// Already names the call and what is known of its effect.
		return err
	}
	var code pkcs11.Error
	if !errors.As(err, &code) {
		return fmt.Errorf("%s: %w", call, err)
	}
	e := &Error{Call: call, Code: code}
	if byCall, ok := advice[code]; ok {
		if a, ok := byCall[call]; ok {
			e.Advice = a
		} else {
			e.Advice = byCall[""]
		}
	}
	return e
}

// Sentinel errors for conditions that are not a failed PKCS#11 call. They
// are wrapped with details; test for them with errors.Is.
var (
	// ErrModule means the PKCS#11 module could not be loaded or initialised.
	ErrModule = errors.New("PKCS#11 module")
	// ErrTokenNotFound means no token matched the selection.
	ErrTokenNotFound = errors.New("token not found")
	// ErrKeyNotFound means no key matched the label or CKA_ID.
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyAmbiguous means more than one object matched where one was expected.
	ErrKeyAmbiguous = errors.New("more than one key matches")
	// ErrLabelExists means a key with that label already exists.
	ErrLabelExists = errors.New("label already in use")
	// ErrUnsuitableKey means the key found is of the wrong type, size or policy for the import.
	ErrUnsuitableKey = errors.New("key is not suitable")
	// ErrNoPIN means no PIN was supplied.
	ErrNoPIN = errors.New("no PIN")
)

// withMechanism names the mechanism a failed call used, on an *Error.
func withMechanism(err error, mech string) error {
	var perr *Error
	if errors.As(err, &perr) && perr.Mechanism == "" {
		perr.Mechanism = mech
	}
	return err
}
