package kmsimport

import "github.com/kmsbridge/kmsbridge/hsm"

// HSMKey identifies the master copy in the token.
type HSMKey struct {
	Token         hsm.TokenIdentity `json:"Token"`
	KeyLabel      string            `json:"KeyLabel,omitempty"`
	KeyID         string            `json:"KeyId,omitempty"`
	KeyCheckValue string            `json:"KeyCheckValue,omitempty"`
	// KeyURI is the key's PKCS#11 URI (RFC 7512), for p11-kit, OpenSSL's
	// pkcs11 provider or pkcs11-tool.
	KeyURI    string `json:"KeyUri,omitempty"`
	Generated bool   `json:"Generated"`
	// Provenance is what the token reports about where the key came from
	// (CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE).
	Provenance string `json:"Provenance,omitempty"`
	// Adopted: the operator took the key over on purpose with --adopt
	// (kmsbridge could not prove it its own); the journal and the record
	// carry the adoption with the provenance above.
	Adopted bool `json:"Adopted,omitempty"`
	// Adaptations are the template changes made for this token, each
	// with why it is safe (e.g. CKA_WRAP_WITH_TRUSTED=false left out).
	Adaptations []string `json:"Adaptations,omitempty"`
}
