package aws

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// MaxValidity is the furthest ahead KMS accepts a ValidTo.
const MaxValidity = 365 * 24 * time.Hour

// Expiry is when imported material expires: either NoExpiry, or ValidTo.
type Expiry struct {
	NoExpiry bool
	ValidTo  time.Time
}

// Validate reports an error unless exactly one of NoExpiry and ValidTo is
// set and ValidTo is in the future and at most 365 days after now.
func (e Expiry) Validate(now time.Time) error {
	switch {
	case e.NoExpiry && !e.ValidTo.IsZero():
		return invalid("both --valid-to and --no-expiry given: choose one (--valid-to for material that expires, --no-expiry for material that does not)")
	case !e.NoExpiry && e.ValidTo.IsZero():
		return invalid("no expiry chosen: give --valid-to TIME (RFC 3339, e.g. %s) for material that expires, or --no-expiry for material that does not", now.Add(180*24*time.Hour).UTC().Truncate(24*time.Hour).Format(time.RFC3339))
	case e.NoExpiry:
		return nil
	case !e.ValidTo.After(now):
		return invalid("--valid-to %s is in the past: KMS needs a time in the future, at most 365 days ahead (before %s)", e.ValidTo.UTC().Format(time.RFC3339), now.Add(MaxValidity).UTC().Format(time.RFC3339))
	case e.ValidTo.After(now.Add(MaxValidity)):
		return invalid("--valid-to %s is more than 365 days ahead: KMS accepts at most %s; re-import the same material from the HSM before then to extend it", e.ValidTo.UTC().Format(time.RFC3339), now.Add(MaxValidity).UTC().Format(time.RFC3339))
	}
	return nil
}

// Model is the KMS ExpirationModel for e.
func (e Expiry) Model() types.ExpirationModelType {
	if e.NoExpiry {
		return types.ExpirationModelTypeKeyMaterialDoesNotExpire
	}
	return types.ExpirationModelTypeKeyMaterialExpires
}
