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
}

// PaperScript is what the operators write on the paper script at the end
// of a ceremony run: the record, its entry count and its head hash, which
// record verify --expect-count and --expect-head later check, proving that
// nothing was cut off the end of the record.
type PaperScript struct {
	Record  string
	Entries int
	Head    string
}

// Paper is the paper-script facts of this run's report.
func (r *Report) Paper(f *File) PaperScript {
	return PaperScript{Record: f.Record, Entries: r.RecordEntries, Head: r.RecordHead}
}
