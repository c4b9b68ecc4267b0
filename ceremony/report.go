package ceremony

import "github.com/kmsbridge/kmsbridge/kmsimport"

// Report is the end of a sequential ceremony run, as --output json prints
// it: the file's digest, every key's outcome and the record's head.
// The fields are in the order encoding/json gives a map's keys, so the
// output is the same as the map it replaced.
type Report struct {
	CeremonyFileSha256 string
	Keys               []*Outcome
	// KmsEndpoint is where the ceremony's KMS requests went, with the TLS
	// peer that answered (docs/endpoint-policy.md).
	KmsEndpoint   *kmsimport.Endpoint `json:",omitempty"`
	RecordEntries int
	RecordHead    string
	// RecordAuditKeySha256 is the fingerprint of the audit key that signed
	// the record's entries, when one did.
	RecordAuditKeySha256 string `json:",omitempty"`
}

// PaperScript is what the operators write on the paper script at the end
// of a ceremony run: the record, its entry count and its head hash, which
// record verify --expect-count and --expect-head later check, proving that
// nothing was cut off the end of the record; and the fingerprint of the
// audit key that signed it, which record verify --expect-audit-key checks,
// proving the record was signed by the ceremony's key and not a stand-in.
type PaperScript struct {
	Record   string
	Entries  int
	Head     string
	AuditKey string
}

// Paper is the paper-script facts of this run's report.
func (r *Report) Paper(f *File) PaperScript {
	return PaperScript{Record: f.Record, Entries: r.RecordEntries, Head: r.RecordHead, AuditKey: r.RecordAuditKeySha256}
}
