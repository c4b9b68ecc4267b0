package ceremony

import (
	"errors"
	"fmt"
	"os"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/record"
)

// GeneratedBefore reads the ceremony record at path, if there is one, for
// the HSM keys earlier runs generated: label to CKA_ID (hex), the map a
// Runner takes as Generated. A label whose generation was intended but
// whose outcome was never recorded (the run was killed in between) maps to
// "". No record yet is an empty map; a record that does not verify is
// refused as invalid input, so a ceremony never continues a tampered or
// torn record. No path (a run without --record) is an empty map too.
func GeneratedBefore(path string) (map[string]string, error) {
	out := map[string]string{}
	if path == "" {
		return out, nil
	}
	fh, err := safefile.Open("ceremony record", path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kmsimport.ErrInvalidInput, err)
	}
	defer fh.Close()
	rep, err := record.VerifyWith(safefile.Limit(fh, "ceremony record", path, safefile.MaxRecord), record.VerifyOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: refusing to continue the ceremony record %s, which does not verify (check it with kmsbridge record verify): %v", kmsimport.ErrInvalidInput, path, err)
	}
	for _, e := range rep.Entries {
		if e.Parsed == nil {
			continue
		}
		o := e.Parsed.Outputs
		switch {
		case e.Parsed.Step == kmsimport.StepGenerate && e.Parsed.Outcome == record.OutcomeOK:
			out[o["HsmKeyLabel"]] = o["HsmKeyId"]
		case e.Parsed.Step == "journal-intent" && (o["Op"] == "C_GenerateKey" || o["Op"] == "C_GenerateKeyPair"):
			// Killed between the intent and the step's own entry: the
			// label was free when the intent was written.
			if _, ok := out[o["TargetKeyLabel"]]; !ok {
				out[o["TargetKeyLabel"]] = ""
			}
		case e.Parsed.Step == "journal-outcome" && o["Result"] == "ok" && o["HsmKeyId"] != "":
			out[o["HsmKeyLabel"]] = o["HsmKeyId"]
		}
	}
	return out, nil
}
