package ceremony

import (
	"context"
	"fmt"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// What each cloud's part of a ceremony needs from outside it (its
// clients) and what the targets entries report (their import results),
// in one place, so the ceremony's core names no cloud.

// Clouds is every cloud's clients, one field per cloud, each read only
// by that cloud's part of the ceremony (the core passes it on, never
// looks in). cmd/kmsbridge opens them; a cloud no key goes to may be
// left empty.
type Clouds struct {
	// AWS are the AWS KMS clients of the keys that go there.
	AWS AWSClients
	// GCP opens the Cloud KMS targets' clients and journals.
	GCP GCPClients
	// Azure opens the Key Vault targets' clients and journals.
	Azure AzureClients
}

// GCPClients gives the Cloud KMS targets their client and their journal
// of intents (one per token and target, the same file import --cloud gcp
// uses on this host).
type GCPClients interface {
	GCP(ctx context.Context, t *GCPTarget) (gcp.API, *journal.Journal, error)
}

// AzureClients gives the Key Vault targets their client and their
// journal of intents (as import --cloud azure on this host).
type AzureClients interface {
	Azure(ctx context.Context, t *AzureTarget, vault string) (azure.API, *journal.Journal, error)
}

// errNoClients is a target's error in a run given no clients for its
// cloud.
var errNoClients = fmt.Errorf("%w: this run has no cloud clients for the key's targets", kmsimport.ErrInvalidInput)

// cloudResults are the clouds' full import results a TargetOutcome
// carries, the one of its cloud set: in JSON they are the outcome's own
// fields Gcp and Azure.
type cloudResults struct {
	Gcp   *gcp.Result   `json:",omitempty"`
	Azure *azure.Result `json:",omitempty"`
}
