package aws

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Steps of renew.
const (
	StepRenewPlan  = "renew-plan"
	StepRenewCheck = "renew-check"
)

// RenewRequest says which linked keys to renew and until when.
type RenewRequest struct {
	// KMSKeyID renews one key (in every Region it exists in); KeyLabel
	// the keys linked to that HSM key; neither renews every key linked to
	// the token.
	KMSKeyID string
	KeyLabel string
	// WithinDays: material expiring within this many days is renewed.
	// Material that expired or was deleted (PENDING_IMPORT) always is.
	WithinDays int
	// Expiry is the new ValidTo (or NoExpiry) of every renewed material.
	Expiry          Expiry
	WrappingKeySpec types.WrappingKeySpec
	DryRun          bool
	// MaxKeys bounds the KMS keys read per Region when none is chosen.
	MaxKeys int
}

// Renewal is one key material renew looked at.
type Renewal struct {
	KeyId         string     `json:"KeyId"`
	Region        string     `json:"Region"`
	KeySpec       string     `json:"KeySpec"`
	KeyMaterialId string     `json:"KeyMaterialId,omitempty"`
	HSMKeyID      string     `json:"HsmKeyId"`
	HSMKeyLabel   string     `json:"HsmKeyLabel,omitempty"`
	OldValidTo    *time.Time `json:"OldValidTo,omitempty"`
	NewValidTo    *time.Time `json:"NewValidTo,omitempty"`
	// Action is renewed, would-renew (dry run), or fine (left alone).
	Action string `json:"Action"`
	Reason string `json:"Reason"`
	// Verification, for a renewed key whose material is now usable.
	Verification string `json:"Verification,omitempty"`

	api  API
	key  *hsm.Key
	spec KeySpec
	mat  Material
	run  *run
}

// RenewResult is what renew did, material by material.
type RenewResult struct {
	DryRun    bool                   `json:"DryRun"`
	Renewed   int                    `json:"Renewed"`
	Materials []*Renewal             `json:"KeyMaterials"`
	Steps     []kmsimport.StepRecord `json:"Steps"`
}

// Renew re-imports, from the HSM, the same material with a new ValidTo into
// every chosen linked key whose material expires within WithinDays or has
// expired or been deleted. Everything is checked (the HSM key of each
// material found and able to be wrapped) before the first import; material
// that is fine is not touched, so renew is safe to run from cron, and a
// re-run after a failure renews only what is still due.
func (im *Importer) Renew(ctx context.Context, regions []Regional, req RenewRequest) (*RenewResult, error) {
	res := &RenewResult{DryRun: req.DryRun, Materials: []*Renewal{}}
	r := &run{im: im, req: &Request{}, res: &Result{}}
	r.res.HSM.Token = im.Token.Identity()
	var todo []*Renewal
	err := r.runSteps(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: func(context.Context) (string, error) { return r.validateRenew(req) }},
		{Name: StepRenewPlan, Run: func(ctx context.Context) (string, error) {
			var err error
			todo, err = r.planRenew(ctx, regions, req, res)
			return fmt.Sprintf("%d key material(s) due, %d fine", len(todo), len(res.Materials)-len(todo)), err
		}},
		{Name: StepRenewCheck, Run: func(ctx context.Context) (string, error) { return r.checkRenewals(ctx, todo) }},
	})
	res.Steps = r.res.Steps
	if err != nil || req.DryRun {
		return res, err
	}
	for _, rn := range todo {
		err := r.renewOne(ctx, rn, req)
		res.Steps = append(res.Steps, rn.run.res.Steps...)
		if err != nil {
			var se *kmsimport.StepError
			if errors.As(err, &se) && res.Renewed > 0 {
				se.State = append(se.State, fmt.Sprintf("%d key material(s) were renewed before this one and stay renewed", res.Renewed))
			}
			return res, err
		}
		res.Renewed++
	}
	// Verify each renewed key once all its due materials are back.
	done := map[string]bool{}
	for _, rn := range todo {
		id := rn.Region + "/" + rn.KeyId
		if done[id] {
			continue
		}
		done[id] = true
		v, err := Verify(ctx, rn.api, im.Token, rn.KeyId, rn.key, rn.spec)
		rn.run.res.Verification = v
		if err != nil {
			err = fmt.Errorf("KMS key %s (%s) was renewed, but: %w", rn.KeyId, rn.Region, err)
			rn.run.emit(StepVerify, "", err)
			return res, err
		}
		rn.Verification = v.Summary
		rn.run.emit(StepVerify, v.Summary, nil)
		res.Steps = append(res.Steps, kmsimport.StepRecord{Name: StepVerify, Summary: v.Summary, Time: im.now().UTC()})
	}
	return res, nil
}

// Validate checks everything about the request that needs neither the
// token nor KMS, as of now, so the command can refuse a bad one before it
// opens the record or the journal.
func (req RenewRequest) Validate(now time.Time) error {
	if req.KMSKeyID != "" && req.KeyLabel != "" {
		return invalid("give either --kms-key-id or --key-label, not both")
	}
	if req.KeyLabel != "" {
		if err := kmsimport.CheckKeyLabel(req.KeyLabel); err != nil {
			return err
		}
	}
	if req.WithinDays < 0 || req.WithinDays > 365 {
		return invalid("--within %d: give a number of days from 0 to 365", req.WithinDays)
	}
	if err := req.Expiry.Validate(now); err != nil {
		return err
	}
	if !req.Expiry.NoExpiry && req.Expiry.ValidTo.Before(now.Add(time.Duration(req.WithinDays)*24*time.Hour)) {
		return invalid("the new expiry %s is within the --within %d days window: every renewed key would be due again at once; choose a later --valid-to (or a larger --valid-for)", req.Expiry.ValidTo.UTC().Format(time.RFC3339), req.WithinDays)
	}
	if _, err := ParseWrappingKeySpec(string(req.WrappingKeySpec)); err != nil {
		return err
	}
	return nil
}

func (r *run) validateRenew(req RenewRequest) (string, error) {
	if err := req.Validate(r.im.now()); err != nil {
		return "", err
	}
	return "request is complete and consistent", nil
}

// planRenew lists the chosen linked keys and decides, material by
// material, what is due.
func (r *run) planRenew(ctx context.Context, regions []Regional, req RenewRequest, res *RenewResult) ([]*Renewal, error) {
	serial := r.res.HSM.Token.Serial
	due := r.im.now().Add(time.Duration(req.WithinDays) * 24 * time.Hour)
	var todo []*Renewal
	found := false
	for _, rg := range regions {
		keys, err := chosenKeys(ctx, rg, req.KMSKeyID, req.MaxKeys, r.im)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if req.KeyLabel != "" && k.HSMKeyLabel != req.KeyLabel {
				continue
			}
			if k.TokenSerial != serial {
				if req.KMSKeyID != "" {
					return nil, invalid("KMS key %s holds material from token serial %s, not this token (serial %s): renew it with that token", k.KeyId, k.TokenSerial, serial)
				}
				continue
			}
			found = true
			for _, m := range k.Materials {
				rn := &Renewal{KeyId: k.KeyId, Region: k.Region, KeySpec: k.KeySpec, KeyMaterialId: m.KeyMaterialId, HSMKeyID: m.HSMKeyID, HSMKeyLabel: k.HSMKeyLabel, OldValidTo: m.ValidTo, api: rg.KMS, mat: m}
				res.Materials = append(res.Materials, rn)
				switch {
				case strings.HasPrefix(m.State, "PENDING"):
					rn.Action, rn.Reason = "fine", "pending rotation: kmsbridge rotate finishes it"
				case m.ImportState == string(types.ImportStatePendingImport):
					rn.Reason = "material expired or was deleted (PendingImport)"
				case m.ValidTo == nil:
					rn.Action, rn.Reason = "fine", "material does not expire"
				case m.ValidTo.Before(due):
					rn.Reason = fmt.Sprintf("material expires in %d days (within %d)", DaysLeft(r.im.now(), *m.ValidTo), req.WithinDays)
				default:
					rn.Action, rn.Reason = "fine", fmt.Sprintf("material expires in %d days", DaysLeft(r.im.now(), *m.ValidTo))
				}
				if rn.Action == "" {
					rn.Action = "would-renew"
					if !req.Expiry.NoExpiry {
						v := req.Expiry.ValidTo.UTC().Truncate(time.Second)
						rn.NewValidTo = &v
					}
					todo = append(todo, rn)
				}
			}
		}
	}
	switch {
	case req.KMSKeyID != "" && !found:
		return nil, invalid("KMS key %s was not found in %s, or carries no kmsbridge link tags: renew only re-imports keys kmsbridge imported", req.KMSKeyID, regionNames(regions))
	case req.KeyLabel != "" && !found:
		return nil, invalid("no KMS key in %s is linked to HSM key label %q of this token", regionNames(regions), req.KeyLabel)
	}
	return todo, nil
}

// checkRenewals finds each due material's HSM key and proves the token can
// wrap it, before any import.
func (r *run) checkRenewals(ctx context.Context, todo []*Renewal) (string, error) {
	for _, rn := range todo {
		if rn.HSMKeyID == "" {
			return "", invalid("KMS key %s (%s): no tag names the HSM key of %s: import it by hand with kmsbridge import --kms-key-id %s --hsm-key-id HEX", rn.KeyId, rn.Region, describeMaterial(rn.mat), rn.KeyId)
		}
		// Tags alone never make a key ours: someone else may have created
		// a PendingImport key and tagged it with this HSM key's link tags.
		if err := r.renewOurs(ctx, rn); err != nil {
			return "", err
		}
		spec, err := ParseKeySpec(rn.KeySpec)
		if err != nil {
			return "", err
		}
		id, err := hex.DecodeString(rn.HSMKeyID)
		if err != nil {
			return "", invalid("KMS key %s: its tag names HSM key CKA_ID %q, which is not hex", rn.KeyId, rn.HSMKeyID)
		}
		k, err := r.im.Token.FindKey(hsm.KeySelector{ID: id}, spec.HSM)
		if err != nil {
			return "", fmt.Errorf("KMS key %s (%s) needs HSM key CKA_ID %s: %w", rn.KeyId, rn.Region, rn.HSMKeyID, err)
		}
		if err := hsm.CheckForImport(k, spec.HSM); err != nil {
			return "", err
		}
		rn.key, rn.spec, rn.HSMKeyLabel = k, spec, k.Label
		if k.WrapWithTrusted {
			return "", invalid("HSM key %q has CKA_WRAP_WITH_TRUSTED=true (dual control): renew it through kmsbridge prepare, approve, wrap and upload with --kms-key-id %s", k.Label, rn.KeyId)
		}
	}
	return fmt.Sprintf("found the HSM key of each of %d material(s) due", len(todo)), nil
}

// renewOne re-imports one material: fresh parameters, a wrap in the HSM,
// and ImportKeyMaterial of the same material with the new expiry.
func (r *run) renewOne(ctx context.Context, rn *Renewal, req RenewRequest) error {
	sub := *r.im
	sub.KMS = rn.api
	ireq := &Request{WrappingKeySpec: req.WrappingKeySpec, Expiry: req.Expiry, KMSKeyID: rn.KeyId}
	if rn.spec.Name == types.KeySpecSymmetricDefault && rn.KeyMaterialId != "" {
		ireq.ImportType, ireq.KeyMaterialId = types.ImportTypeExistingKeyMaterial, rn.KeyMaterialId
	}
	rr := &run{im: &sub, req: ireq, res: &Result{KeyId: rn.KeyId, Origin: string(types.OriginTypeExternal)}}
	rr.res.HSM.Token = r.res.HSM.Token
	rr.res.ExpirationModel = string(req.Expiry.Model())
	if !req.Expiry.NoExpiry {
		v := req.Expiry.ValidTo.UTC()
		rr.res.ValidTo = &v
	}
	rr.setSpec(rn.spec)
	rr.setKey(rn.key, false)
	rn.run = rr
	err := rr.runSteps(ctx, []kmsimport.Step{
		{Name: StepProbe, Run: rr.probe},
		{Name: StepGetParameters, Run: rr.getParameters},
		{Name: StepWrap, Run: rr.wrap},
		{Name: StepImport, Run: rr.importMaterial},
	})
	if err != nil {
		var se *kmsimport.StepError
		if errors.As(err, &se) {
			se.Resume = "fix the cause above and run the same kmsbridge renew again: material already renewed is not touched again, and KMS accepts the same material again"
		}
		return err
	}
	rn.Action = "renewed"
	if rr.res.KeyMaterialId != "" {
		rn.KeyMaterialId = rr.res.KeyMaterialId
	}
	return nil
}

// chosenKeys is the one key keyID (if it exists in this Region) or every
// linked key of the Region.
func chosenKeys(ctx context.Context, rg Regional, keyID string, maxKeys int, im *Importer) ([]StatusKMSKey, error) {
	if keyID == "" {
		keys, incomplete, err := linkedKeys(ctx, rg, StatusOptions{MaxKeys: maxKeys, Log: im.Log})
		if err == nil && incomplete != "" {
			err = invalid("%s: choose the key with --kms-key-id, or raise --max-keys", incomplete)
		}
		return keys, err
	}
	k, err := describeLinked(ctx, rg, keyID)
	if err != nil || k == nil {
		return nil, err
	}
	return []StatusKMSKey{*k}, nil
}

// describeLinked reads one key with its tags and materials; nil when the
// Region has no such key.
func describeLinked(ctx context.Context, rg Regional, keyID string) (*StatusKMSKey, error) {
	d, err := rg.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	if err != nil {
		var ke *kmsimport.KMSError
		if e := explain("DescribeKey", err); errors.As(e, &ke) && ke.Code == "NotFoundException" {
			return nil, nil
		}
		return nil, explain("DescribeKey", err)
	}
	md := d.KeyMetadata
	id := aws.ToString(md.KeyId)
	tags, err := (&run{im: &Importer{KMS: rg.KMS}}).listTags(ctx, id)
	if err != nil {
		return nil, err
	}
	if tags[TagHSMKeyID] == "" {
		return nil, nil
	}
	k := &StatusKMSKey{KeyId: id, Arn: aws.ToString(md.Arn), Region: rg.Region, KeySpec: string(md.KeySpec), KeyUsage: string(md.KeyUsage), KeyState: string(md.KeyState),
		HSMKeyID: tags[TagHSMKeyID], HSMKeyLabel: tags[TagHSMKeyLabel], TokenSerial: tags[TagTokenSerial]}
	if md.MultiRegion != nil && *md.MultiRegion && md.MultiRegionConfiguration != nil {
		k.MultiRegion = string(md.MultiRegionConfiguration.MultiRegionKeyType)
	}
	if md.KeyState == types.KeyStatePendingDeletion {
		return nil, invalid("KMS key %s is pending deletion: restore it with aws kms cancel-key-deletion first", id)
	}
	k.Materials, k.Note, err = ListMaterials(ctx, rg.KMS, md, tags)
	return k, err
}

func regionNames(rs []Regional) string {
	var n []string
	for _, r := range rs {
		n = append(n, r.Region)
	}
	return strings.Join(n, ", ")
}

// WriteSummary writes what renew did, material by material.
func (res *RenewResult) WriteSummary(w io.Writer) {
	switch {
	case res.DryRun:
		fmt.Fprintln(w, "Dry run: nothing was changed.")
	case res.Renewed == 0:
		fmt.Fprintln(w, "Nothing to renew.")
	default:
		fmt.Fprintf(w, "Renewed %d key material(s).\n", res.Renewed)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KMS KEY\tREGION\tKEY MATERIAL\tHSM KEY\tACTION\tOLD VALID TO\tNEW VALID TO\tREASON")
	for _, m := range res.Materials {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.KeyId, m.Region, dash(shortID(m.KeyMaterialId)), dash(m.HSMKeyID), m.Action, timeOr(m.OldValidTo, "-"), timeOr(m.NewValidTo, "-"), m.Reason)
	}
	tw.Flush()
	for _, m := range res.Materials {
		if m.Verification != "" {
			fmt.Fprintf(w, "Verified %s (%s): %s\n", m.KeyId, m.Region, m.Verification)
		}
	}
}

func timeOr(t *time.Time, or string) string {
	if t == nil {
		return or
	}
	return t.Format(time.RFC3339)
}

// renewOurs asks the ownership authority whether rn's KMS key is
// kmsbridge's copy of its HSM key: its link tags and this host's journal
// must agree, or the operator adopts it with --adopt.
func (r *run) renewOurs(ctx context.Context, rn *Renewal) error {
	k, err := NewKMSView(rn.api, nil).Key(ctx, rn.KeyId)
	if err != nil {
		return err
	}
	if k == nil {
		return invalid("KMS key %s was not found in %s", rn.KeyId, rn.Region)
	}
	return r.owner().KMSKeyOurs(k, rn.HSMKeyID, fmt.Sprintf("kmsbridge renew --kms-key-id %s --adopt", rn.KeyId))
}
