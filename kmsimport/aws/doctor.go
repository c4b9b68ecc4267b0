package aws

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
)

// DoctorRow is one cell of the doctor's table: a KMS key spec, a wrapping
// algorithm and a wrapping key spec, and whether a key generated in this
// token imports that way, or why not.
type DoctorRow struct {
	KeySpec           string `json:"KeySpec"`
	WrappingAlgorithm string `json:"WrappingAlgorithm"`
	WrappingKeySpec   string `json:"WrappingKeySpec"`
	Imports           bool   `json:"Imports"`
	// RefusedBy is "KMS" (KMS's rules refuse the combination on any token)
	// or "token" (this token cannot), empty when it imports.
	RefusedBy string `json:"RefusedBy,omitempty"`
	Reason    string `json:"Reason,omitempty"`
	// Warnings are what an import this way would warn about.
	Warnings []string `json:"Warnings,omitempty"`
}

// DoctorReport is what kmsbridge doctor finds on one token: every key spec
// × wrapping algorithm × wrapping key spec, and what dual control, proof
// and provenance the token supports. Finding it changes nothing on the
// token: every probe works on session objects that are destroyed.
type DoctorReport struct {
	Token       hsm.TokenIdentity   `json:"Token"`
	Mechanisms  []hsm.MechanismInfo `json:"Mechanisms"`
	Wraps       string              `json:"Wraps"`
	Generates   string              `json:"Generates"`
	DualControl string              `json:"DualControl"`
	// CheckValue says whether AES keys get a CKA_CHECK_VALUE, the only
	// evidence of an AES key's identity KMS cannot give.
	CheckValue bool `json:"CheckValue"`
	// Provenance is what the token reads back for CKA_LOCAL,
	// CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE on a key it generated.
	Provenance map[string]string `json:"Provenance"`
	// Proof says, per key spec, how kmsbridge proves KMS holds the HSM's
	// material on this token, or why it cannot.
	Proof       map[string]string `json:"Proof"`
	Adaptations []string          `json:"Adaptations,omitempty"`
	Notes       []string          `json:"Notes,omitempty"`
	// KeySpecs are the only key specs checked, when doctor was limited to
	// them (--key-spec); empty means every key spec KMS imports.
	KeySpecs []string `json:"KeySpecs,omitempty"`
	// Scale is what the token holds and what the one label search every
	// import makes costs on it now.
	Scale DoctorScale `json:"Scale"`
	Rows  []DoctorRow `json:"Rows"`
}

// DoctorScale names the cost on this token that grows with what it holds
// (docs/tokens.md): an import searches the token once for its label, and
// some tokens read every object to search.
type DoctorScale struct {
	// Objects is how many token objects the logged-in user can see.
	Objects int `json:"Objects"`
	// SearchMillis is the median of three searches for a label no object
	// has, in milliseconds.
	SearchMillis float64 `json:"SearchMillis"`
}

// searchRuns is how many searches doctor times.
const searchRuns = 3

// measureScale counts tok's objects and times its search for a free
// label; both only read. Counting reads no label: doctor's own cost must
// not grow with the token beyond the searches it times.
func measureScale(tok *hsm.Token) (DoctorScale, error) {
	n, err := tok.CountObjects()
	if err != nil {
		return DoctorScale{}, err
	}
	sc := DoctorScale{Objects: n}
	free := "kmsbridge-doctor-" + journal.NewAttemptID()
	var ms []float64
	for range searchRuns {
		start := time.Now()
		if _, err := tok.LabelInUse(free); err != nil {
			return DoctorScale{}, err
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
	}
	slices.Sort(ms)
	sc.SearchMillis = ms[len(ms)/2]
	return sc, nil
}

// Summary says what the scale figures mean for imports.
func (s DoctorScale) Summary() string {
	return fmt.Sprintf("%d objects; one search for a label takes %.1f ms now: each import makes one, a bulk run none (it reads the labels once; docs/tokens.md)", s.Objects, s.SearchMillis)
}

// WrappingKeySpecs are the KMS wrapping key specs, largest first.
var WrappingKeySpecs = []types.WrappingKeySpec{types.WrappingKeySpecRsa4096, types.WrappingKeySpecRsa3072, types.WrappingKeySpecRsa2048}

// Doctor fills a DoctorReport for tok by asking its capability probes
// about every cell of the key specs only names (every key spec when only
// is empty); KMS's own rules are applied first, so a cell KMS would refuse
// is never probed. A key spec left out is never probed: on a token that
// computes in software, generating a throwaway RSA-4096 key is most of
// what doctor costs.
func Doctor(tok *hsm.Token, only ...KeySpec) (*DoctorReport, error) {
	caps, err := tok.Capabilities()
	if err != nil {
		return nil, err
	}
	specs := KeySpecs
	var limited []string
	if len(only) > 0 {
		specs = nil
		for _, ks := range KeySpecs {
			if slices.ContainsFunc(only, func(o KeySpec) bool { return o.Name == ks.Name }) {
				specs = append(specs, ks)
				limited = append(limited, string(ks.Name))
			}
		}
	}
	rep := &DoctorReport{KeySpecs: limited, Token: tok.Identity(), Mechanisms: caps.Mechanisms(), Wraps: "yes", Generates: "yes", DualControl: "yes: enforced (checked on a throwaway key)"}
	if err := caps.WrapsAtAll(); err != nil {
		rep.Wraps = "no: " + err.Error()
	}
	if err := caps.GeneratesAtAll(); err != nil {
		rep.Generates = "no: " + err.Error()
	} else {
		rep.Generates = generates(caps, specs)
	}
	for _, spec := range specs {
		for _, w := range Wrappings {
			for _, wks := range WrappingKeySpecs {
				row := DoctorRow{KeySpec: string(spec.Name), WrappingAlgorithm: string(w.Algorithm), WrappingKeySpec: string(wks)}
				if rule, _ := KMSWrapRule(spec, w, wks); rule != "" {
					// The advice is added below, from what this token does.
					row.RefusedBy, row.Reason = "KMS", rule
				} else if warnings, err := tok.Check(hsm.Ask{Key: spec.HSM, Generate: true, Wrap: hsm.WrapMethod{RSAAES: w.RSAAES, OAEP: w.OAEP}}); err != nil {
					var u *hsm.UnsupportedError
					if !errors.As(err, &u) {
						return nil, err
					}
					row.RefusedBy, row.Reason = "token", err.Error()
				} else {
					row.Imports = true
					row.Warnings = warnings
				}
				rep.Rows = append(rep.Rows, row)
			}
		}
	}
	adviseKMSRefusals(rep.Rows)
	if err := caps.DualControl(); err != nil {
		rep.DualControl = "no: " + err.Error()
	}
	rep.CheckValue = caps.CheckValue()
	rep.Provenance = caps.Provenance()
	rep.Proof = map[string]string{}
	for _, spec := range specs {
		if rep.Proof[string(spec.Name)], err = withAgreementProof(tok, spec, proofOf(caps, spec, rep.CheckValue)); err != nil {
			return nil, err
		}
	}
	rep.Adaptations = caps.Adaptations()
	rep.Notes = caps.Notes()
	if rep.Scale, err = measureScale(tok); err != nil {
		return nil, err
	}
	return rep, nil
}

// adviseKMSRefusals ends the reason of every row KMS refuses with what to
// use instead, naming only the algorithms and wrapping key specs that
// import this key spec on this token: both KMS and the token allow them.
func adviseKMSRefusals(rows []DoctorRow) {
	for i, row := range rows {
		if row.RefusedBy != "KMS" {
			continue
		}
		var algs, specs []string
		for _, other := range rows {
			if other.KeySpec != row.KeySpec || !other.Imports {
				continue
			}
			if other.WrappingKeySpec == row.WrappingKeySpec && !slices.Contains(algs, other.WrappingAlgorithm) {
				algs = append(algs, other.WrappingAlgorithm)
			}
			if other.WrappingAlgorithm == row.WrappingAlgorithm && !slices.Contains(specs, other.WrappingKeySpec) {
				specs = append(specs, other.WrappingKeySpec)
			}
		}
		var advice []string
		if len(algs) > 0 {
			advice = append(advice, "use --wrapping-algorithm "+strings.Join(algs, " or ")+", which this token was checked to do")
		}
		if len(specs) > 0 {
			advice = append(advice, "or --wrapping-key-spec "+strings.Join(specs, " or "))
		}
		if len(advice) == 0 {
			advice = append(advice, "and this token can do none of the algorithms KMS accepts for it under "+row.WrappingKeySpec)
		}
		rows[i].Reason = row.Reason + ": " + strings.Join(advice, ", ")
	}
}

// generates says which kinds of key of specs the token generated as
// throwaway session keys: "yes" only when it generated every kind, and
// otherwise which it did and why not the rest, from the probes alone.
func generates(caps *hsm.Capabilities, specs []KeySpec) string {
	var made, refused []string
	seen := map[string]bool{}
	for _, spec := range specs {
		name := spec.HSM.String()
		if seen[name] {
			continue
		}
		seen[name] = true
		if err := caps.Generation(spec.HSM); err != nil {
			refused = append(refused, err.Error())
		} else {
			made = append(made, name)
		}
	}
	switch {
	case len(refused) == 0:
		return "yes"
	case len(made) == 0:
		return "no: it generated none of the key types KMS imports on throwaway session keys: " + strings.Join(refused, "; ")
	}
	return "some: " + strings.Join(made, ", ") + " (checked on throwaway session keys); not: " + strings.Join(refused, "; ")
}

// proofOf says how an import of spec is proved on the token, claiming only
// what its probes checked.
func proofOf(caps *hsm.Capabilities, spec KeySpec, checkValue bool) string {
	if err := caps.Proof(spec.HSM); err != nil {
		return "none: " + err.Error()
	}
	switch {
	case spec.Secret() && spec.Mac != "":
		return "KMS GenerateMac equals the token's HMAC of a random message (the token's HMAC was checked on a throwaway key)"
	case spec.Secret() && checkValue:
		return "KMS cannot confirm AES material; the token's key check value is recorded"
	case spec.Secret():
		return "KMS cannot confirm AES material, and this token gives no key check value"
	}
	return "KMS GetPublicKey equals the token's public key, and KMS signatures verify under it"
}

// Summary is a one-line count of the table.
func (r *DoctorReport) Summary() string {
	n := 0
	for _, row := range r.Rows {
		if row.Imports {
			n++
		}
	}
	only := ""
	if len(r.KeySpecs) > 0 {
		only = " (only key specs " + strings.Join(r.KeySpecs, ", ") + " were checked, as --key-spec asked)"
	}
	return fmt.Sprintf("%d of %d combinations import from token %q%s", n, len(r.Rows), r.Token.Label, only)
}
