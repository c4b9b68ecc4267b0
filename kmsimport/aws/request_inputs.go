package aws

import (
	"encoding/hex"
	"strconv"
	"time"
)

// RecordInputs is what the user asked for, as the Inputs of the ceremony
// record's entries: every field of the request under its record name,
// MultiRegion only when asked for, ValidTo in RFC 3339 UTC when given.
func (r Request) RecordInputs() map[string]string {
	in := map[string]string{
		"HsmKeyLabel": r.KeyLabel, "HsmKeyId": hex.EncodeToString(r.KeyID), "Generate": strconv.FormatBool(r.Generate),
		"KmsKeyId": r.KMSKeyID, "AliasName": r.Alias, "KeySpec": r.KeySpec, "KeyUsage": r.KeyUsage,
		"WrappingAlgorithm": r.WrappingAlgorithm, "WrappingKeySpec": string(r.WrappingKeySpec),
		"NoExpiry": strconv.FormatBool(r.Expiry.NoExpiry), "WrapWithTrusted": strconv.FormatBool(r.WrapWithTrusted), "AllowNonSensitive": strconv.FormatBool(r.AllowNonSensitive),
	}
	if r.MultiRegion {
		in["MultiRegion"] = "true"
	}
	if !r.Expiry.ValidTo.IsZero() {
		in["ValidTo"] = r.Expiry.ValidTo.UTC().Format(time.RFC3339)
	}
	return in
}
