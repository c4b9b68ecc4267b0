package gcp

import (
	"net/url"
	"strconv"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Target is Cloud KMS for one request, as the neutral core's
// kmsimport.Adapter: its wrap methods (target, algorithms.go), the journal
// it is journaled under, and the request as the record names it.
type Target struct {
	target
	Req Request
	// EndpointURL is the endpoint the operator named; "" is Google's.
	EndpointURL string
}

// JournalTarget is the project and location, and the endpoint's host when
// one was named: runs into one location share a journal.
func (t Target) JournalTarget() string {
	s := "gcp-" + t.Req.Project + "-" + t.Req.Location
	if t.EndpointURL != "" {
		if u, err := url.Parse(t.EndpointURL); err == nil {
			s += "@" + u.Host
		}
	}
	return s
}

// RecordInputs is the request as the ceremony record names it.
func (t Target) RecordInputs() map[string]string {
	in := map[string]string{"Cloud": "gcp", "CryptoKey": t.Req.key(), "Algorithm": t.Req.Algorithm, "ProtectionLevel": t.Req.ProtectionLevel,
		"KeyLabel": t.Req.KeyLabel, "Generate": strconv.FormatBool(t.Req.Generate)}
	if t.Req.SkipAttestation {
		in["SkipAttestation"] = "true"
	}
	return in
}

var _ kmsimport.Adapter = Target{}
