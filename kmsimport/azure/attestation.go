package azure

// What kmsbridge can and cannot say about the Key Exchange Key's origin
// (docs/azure-import.md, "KEK attestation", gives the evidence).
//
// Key Vault Premium publishes no key attestation. Managed HSM does
// (GET /keys/NAME[/VERSION]/attestation, attributes.attestation with a PEM
// bundle and private- and public-key attestation blobs, version "MRVL-1"),
// and Microsoft validates it with its own tool; but no specification of
// the blobs' layout or of what signs them is published, and the one real
// sample (an Azure CLI recording) does not carry a signature kmsbridge can
// find with the certified keys. An attestation kmsbridge cannot check
// would only look like a check, so none is claimed: the result and the
// record say exactly what was checked, and how the operator can check the
// rest.

// Attestation statuses, the start of Result.Attestation.
const (
	AttestationNotAvailable = "not available"
	AttestationNotVerified  = "not verified"
)

// kekChecked is what kmsbridge did check about every KEK (useKEK).
const kekChecked = "checked: the KEK is RSA-HSM 2048/3072/4096 with the single operation import, enabled and within its validity, and a version of --kek-name in this very vault"

// attestationNote says what was and was not checked about the KEK.
func attestationNote(managedHSM bool) string {
	if managedHSM {
		return AttestationNotVerified + ": Managed HSM publishes a key attestation of the KEK (format MRVL-1, Marvell LiquidSecurity), but no public specification of it that kmsbridge could verify against, so that the KEK was generated in the HSM and never left it is NOT verified; " +
			kekChecked + "; to check the rest yourself: az keyvault key get-attestation --hsm-name NAME --name KEK --file att.json, then Microsoft's validate_attestation.py (Azure/azure-managed-hsm-key-attestation)"
	}
	return AttestationNotAvailable + ": Key Vault offers no key attestation, so that the KEK was generated in an HSM rests on Azure's word; " + kekChecked
}
