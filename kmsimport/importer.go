package kmsimport

import (
	"crypto/rsa"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/hsm"
)

// Importer runs the import flow against one token and one KMS endpoint.
type Importer struct {
	KMS   API
	Token Token
	// Log receives one Info line per step; nil discards.
	Log *slog.Logger
	// Observe, when set, hears of every step as it completes or fails.
	Observe func(StepEvent)
	// Replicas are the Regions a multi-Region import replicates to, each
	// with its own client.
	Replicas []Regional
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

// run is the state of one import as it proceeds; each step reads what
// earlier steps left and adds its own, and the whole is the Result.
type run struct {
	im       *Importer
	req      *Request
	res      *Result
	key      *hsm.Key
	spec     KeySpec
	usage    types.KeyUsageType
	quirks   hsm.Quirks
	wrapping Wrapping
	pub      *rsa.PublicKey
	pubDER   []byte
	token    []byte
	wrapped  []byte
	// existing is the KMS key's metadata when importing into an existing key.
	existing *types.KeyMetadata
	// aliasTarget is the key id the alias already points to, if it exists.
	aliasTarget string
}
