package ceremony

import (
	"context"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// What the targets' clouds need from outside the ceremony (their clients)
// and what they report (their import results), in one place, so the
// generic per-target steps name no cloud.

// Clouds gives the Cloud KMS and Key Vault targets their client and
// their journal of intents (one per token and target, the same file
// import --cloud gcp|azure uses on this host). cmd/kmsbridge opens them.
type Clouds interface {
	GCP(ctx context.Context, t *GCPTarget) (gcp.API, *journal.Journal, error)
	Azure(ctx context.Context, t *AzureTarget, vault string) (azure.API, *journal.Journal, error)
}

// cloudResults are the clouds' full import results a TargetOutcome
// carries, the one of its cloud set: in JSON they are the outcome's own
// fields Gcp and Azure.
type cloudResults struct {
	Gcp   *gcp.Result   `json:",omitempty"`
	Azure *azure.Result `json:",omitempty"`
}
