package aws

import (
	"crypto/rsa"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// Importer runs the import flow against one token and one KMS endpoint.
type Importer struct {
	KMS   API
	Token kmsimport.Token
	// Log receives one Info line per step; nil discards.
	Log *slog.Logger
	// Observe, when set, hears of every step as it completes or fails.
	Observe func(kmsimport.StepEvent)
	// Replicas are the Regions a multi-Region import replicates to, each
	// with its own client.
	Replicas []Regional
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Halt, when set, is asked after every step whether the flow must stop
	// (the ceremony record could not be written): a non-nil error stops it
	// before its next change.
	Halt func() error
	// Journal receives an intent before, and an outcome after, every call
	// that changes the HSM or KMS; nil journals nothing (and a re-run then
	// finds earlier KMS keys only by their link tags).
	Journal *journal.Journal
	// Command names the kmsbridge command in the journal; "" is "import".
	Command string
	// AllowSecondKMSKey lets an import create a new KMS key for an HSM key
	// that KMS keys are already linked to. Without it such an import
	// resumes into the one linked key, or is refused when there are several.
	AllowSecondKMSKey bool
	// ConsistencyWindow bounds the wait for KMS to know a key the run has
	// just created or replicated (consistency.go); 0 is ConsistencyWindow.
	ConsistencyWindow time.Duration
	// Owner is the ownership authority every "is this key ours" question
	// goes to (package ownership); nil is one over Journal and the token
	// that adopts nothing.
	Owner *ownership.Authority
	// Tagging searches KMS keys by tag in the home Region (the Resource
	// Groups Tagging API); nil searches nothing, and keys made on another
	// host are then not found.
	Tagging TagSearch
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
	wrapping Wrapping
	pub      *rsa.PublicKey
	pubDER   []byte
	token    []byte
	wrapped  []byte
	// existing is the KMS key's metadata when importing into an existing key.
	existing *types.KeyMetadata
	// aliasTarget is the key id the alias already points to, if it exists.
	aliasTarget string
	// unknown lists the calls whose answer was lost and whose effect is
	// not established.
	unknown []string
	// linkedHere is set when the existing KMS key's link tags name this
	// HSM key and token.
	linkedHere bool
	// material is the existing KMS key's material that the HSM key backs
	// (by the key's kmsbridge tags), nil when it has none yet: a re-import
	// names it, whichever material is current.
	material *Material
	// fresh is set when this run created the KMS key (or took up the key
	// its lost CreateKey made): KMS may not know it for a moment yet.
	fresh bool
	// consistencyWaits counts NotFoundExceptions waited out since the
	// last step summary that said so.
	consistencyWaits int
	// tagged is set when link tags were written onto an existing key.
	tagged bool
	// resumed says what an earlier run had done that this one takes up.
	resumed []string
}
