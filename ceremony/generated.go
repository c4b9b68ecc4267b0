package ceremony

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
	"github.com/kmsbridge/kmsbridge/record"
)

// stepGenerate is the record step in which any cloud's import generates
// the HSM key (TestStepGenerateIsEveryClouds).
const stepGenerate = "generate-hsm-key"

// GeneratedBefore reads the ceremony record at path, if there is one, for
// the HSM keys earlier runs generated: label to CKA_ID (hex), the map a
// Runner takes as Generated. A label whose generation was intended but
// whose outcome was never recorded (the run was killed in between) maps to
// "". No record yet is an empty map; a record that does not verify is
// refused as invalid input, so a ceremony never continues a tampered or
// torn record. No path (a run without --record) is an empty map too.
func GeneratedBefore(path string) (map[string]string, error) {
	ev, err := RecordEvidence(path)
	if err != nil {
		return nil, err
	}
	return ev.Generated, nil
}

// Evidence is what a ceremony record shows kmsbridge doing on this host,
// for the ownership authority: the HSM keys it generated (label to
// CKA_ID; for an intent without an outcome, the CKA_ID the intent names,
// "" when it names none), the KMS keys it created
// (key id to HSM key CKA_ID), and the CreateKey attempts whose answer the
// record does not show (attempt id to HSM key CKA_ID).
type Evidence struct {
	Generated map[string]string
	KMSKeys   map[string]string
	Attempts  map[string]string
}

// RecordEvidence reads the ceremony record at path, if there is one, for
// Evidence. No record (or no path) is empty evidence; a record that does
// not verify is refused as invalid input, so a ceremony never continues a
// tampered or torn record.
func RecordEvidence(path string) (Evidence, error) {
	ev := Evidence{Generated: map[string]string{}, KMSKeys: map[string]string{}, Attempts: map[string]string{}}
	out := ev.Generated
	if path == "" {
		return ev, nil
	}
	fh, err := safefile.Open("ceremony record", path)
	if errors.Is(err, os.ErrNotExist) {
		return ev, nil
	}
	if err != nil {
		return ev, fmt.Errorf("%w: %w", kmsimport.ErrInvalidInput, err)
	}
	defer fh.Close()
	rep, err := record.VerifyWith(safefile.Limit(fh, "ceremony record", path, safefile.MaxRecord), record.VerifyOptions{})
	if err != nil {
		return ev, fmt.Errorf("%w: refusing to continue the ceremony record %s, which does not verify (check it with kmsbridge record verify): %v", kmsimport.ErrInvalidInput, path, err)
	}
	for _, e := range rep.Entries {
		if e.Parsed == nil {
			continue
		}
		o := e.Parsed.Outputs
		if o["Op"] == "CreateKey" && o["TargetHsmKeyId"] != "" {
			switch {
			case e.Parsed.Step == "journal-intent":
				ev.Attempts[o["Attempt"]] = o["TargetHsmKeyId"]
			case e.Parsed.Step == "journal-outcome" && o["Result"] == "ok" && o["KmsKeyId"] != "":
				ev.KMSKeys[o["KmsKeyId"]] = o["TargetHsmKeyId"]
				delete(ev.Attempts, o["Attempt"])
			case e.Parsed.Step == "journal-outcome" && o["Result"] == "failed":
				delete(ev.Attempts, o["Attempt"])
			}
		}
		switch {
		case e.Parsed.Step == stepGenerate && e.Parsed.Outcome == record.OutcomeOK:
			out[o["HsmKeyLabel"]] = o["HsmKeyId"]
		case e.Parsed.Step == "journal-intent" && (o["Op"] == "C_GenerateKey" || o["Op"] == "C_GenerateKeyPair"):
			// Killed between the intent and the step's own entry: the
			// intent names the CKA_ID the key was generated with, which
			// the ownership authority holds the token's key to. An intent
			// without one (an earlier version's) proves nothing: "".
			if _, ok := out[o["TargetKeyLabel"]]; !ok {
				out[o["TargetKeyLabel"]] = strings.ToLower(o["Target"+ownership.IntentKeyID])
			}
		case e.Parsed.Step == "journal-outcome" && o["Result"] == "ok" && o["HsmKeyId"] != "":
			out[o["HsmKeyLabel"]] = o["HsmKeyId"]
		}
	}
	return ev, nil
}
