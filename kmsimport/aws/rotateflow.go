package aws

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// Steps of rotate.
const (
	StepRotateCheck   = "rotate-check"
	StepTagRotating   = "tag-rotating-to"
	StepReplicas      = "import-replicas"
	StepRotateOnDmd   = "rotate-on-demand"
	StepWaitRotation  = "wait-rotation"
	StepTagMaterial   = "tag-material"
	StepMoveAlias     = "move-alias"
	StepTagRotatedKey = "tag-rotated-key"
	StepUntagRotating = "untag-rotating-to"
	StepImportNewKey  = "import-new-key"
)

// Tags that link a manually rotated key to its successor and back.
const (
	TagRotatedTo   = "kmsbridge:rotated-to"
	TagRotatedFrom = "kmsbridge:rotated-from"
)

// MaxOnDemandRotations is KMS's limit on on-demand rotations per key.
const MaxOnDemandRotations = 25

// RotateRequest is one rotation, as the user asked for it.
type RotateRequest struct {
	// KMSKeyID is the key (id, ARN or alias/NAME) to rotate.
	KMSKeyID string
	// NewKeyLabel labels the new HSM key; empty derives it from the
	// current one: LABEL-r2, then LABEL-r3, ...
	NewKeyLabel string
	// Description is the KeyMaterialDescription of new symmetric material,
	// or the description of the new KMS key of a manual rotation.
	Description     string
	Expiry          Expiry
	WrappingKeySpec types.WrappingKeySpec
	DryRun          bool
	// Alias is the alias a manual rotation moves; empty means the key's
	// only alias.
	Alias string
	// Wait bounds the wait for an asynchronous rotation to complete.
	Wait time.Duration
	// Poll is the first interval between ListKeyRotations polls (doubled
	// up to 10 s); 0 means 1 s.
	Poll time.Duration
	// NewRotation rotates again although this host finished a rotation of
	// the key within RotationRepeatWindow (without it rotate reports that
	// rotation and changes nothing), and closes as abandoned an open
	// rotation in the journal that KMS and the token do not confirm.
	NewRotation bool
}

// RotateResult is what a rotation did.
type RotateResult struct {
	// Mode is on-demand (symmetric: new material in the same KMS key) or
	// manual (a new KMS key, the alias moved).
	Mode             string           `json:"Mode"`
	DryRun           bool             `json:"DryRun"`
	KeyId            string           `json:"KeyId"`
	Region           string           `json:"Region"`
	NewKeyId         string           `json:"NewKeyId,omitempty"`
	AliasName        string           `json:"AliasName,omitempty"`
	OldKeyMaterialId string           `json:"OldKeyMaterialId,omitempty"`
	NewKeyMaterialId string           `json:"NewKeyMaterialId,omitempty"`
	OldHSMKey        kmsimport.HSMKey `json:"OldHsmKey"`
	NewHSMKey        kmsimport.HSMKey `json:"NewHsmKey"`
	Replicas         []string         `json:"ReplicaRegions,omitempty"`
	Rotations        int              `json:"OnDemandRotations"`
	// AlreadyDone: NewKeyLabel already backs the current material (or the
	// key the alias now names): an earlier run finished; nothing changed.
	AlreadyDone bool `json:"AlreadyDone"`
	// RotationIntent is the journal attempt of this rotation's intent.
	RotationIntent string `json:"RotationIntent,omitempty"`
	// Resumed: this run finished a rotation an earlier, interrupted run
	// started at StartedAt (the journal's open intent).
	Resumed   bool       `json:"Resumed"`
	StartedAt *time.Time `json:"RotationStarted,omitempty"`
	// FinishedAt is when the rotation AlreadyDone reports finished.
	FinishedAt *time.Time `json:"RotationFinished,omitempty"`
	// PreviousRotation is when the last rotation of the key this host
	// finished ended, when this run started a new one after it.
	PreviousRotation *time.Time             `json:"PreviousRotationFinished,omitempty"`
	Verification     string                 `json:"Verification,omitempty"`
	Steps            []kmsimport.StepRecord `json:"Steps"`
}

// Rotate rotates the material of a linked KMS key, keeping every HSM
// generation. Symmetric keys rotate on demand: a new HSM key, its material
// imported with ImportType NEW_KEY_MATERIAL (and into every replica of a
// multi-Region key), RotateKeyOnDemand, a wait until the new material is
// CURRENT, and a check that a ciphertext made before still decrypts while
// new ones use the new material. HMAC and asymmetric keys, whose material
// never changes, rotate manually: a new KMS key with new material and the
// alias moved to it; the old key is kept. Each step finds what an earlier,
// interrupted run did, so re-running the same command finishes the job.
func (im *Importer) Rotate(ctx context.Context, regions []Regional, req RotateRequest) (*RotateResult, error) {
	ro := &rotation{run: &run{im: im, req: &Request{WrappingKeySpec: req.WrappingKeySpec, Expiry: req.Expiry}, res: &Result{Origin: string(types.OriginTypeExternal)}}, regions: regions, rreq: req}
	ro.res.HSM.Token = im.Token.Identity()
	ro.out = &RotateResult{DryRun: req.DryRun, Region: regions[0].Region}
	err := ro.runSteps(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: ro.validate},
		{Name: StepRotateCheck, Run: ro.check},
	})
	if err != nil || req.DryRun || ro.out.AlreadyDone {
		ro.out.Steps = ro.res.Steps
		return ro.out, err
	}
	if err := ro.runSteps(ctx, []kmsimport.Step{{Name: StepOpenRotation, Run: ro.openRotation}}); err != nil {
		ro.out.Steps = ro.res.Steps
		return ro.out, err
	}
	if ro.out.Mode == "manual" {
		err = ro.manual(ctx)
	} else {
		err = ro.onDemand(ctx)
	}
	ro.out.Steps = append(ro.out.Steps, ro.res.Steps...)
	return ro.out, err
}

// rotation is the state of one rotate as it proceeds.
type rotation struct {
	*run
	regions []Regional
	rreq    RotateRequest
	out     *RotateResult
	cur     *StatusKMSKey
	curKey  *hsm.Key
	// newLabel and newKey are the next generation's HSM key (newKey nil
	// until found or generated).
	newLabel string
	newKey   *hsm.Key
	// pending is a material an earlier run imported and did not rotate to.
	pending *Material
	// finishing: KMS already made the new material current, but the run
	// that asked stopped before it untagged and verified.
	finishing bool
	tags      map[string]string
	probeCT   []byte
	// intent is this rotation's intent in the journal (opened by this run
	// or taken up from an interrupted one); done a rotation of the key
	// this host finished within RotationRepeatWindow; previous when the
	// last one finished.
	intent   *rotationIntent
	done     *rotationIntent
	previous *time.Time
}

// Validate checks everything about the request that needs neither the
// token nor KMS (the key named, the wrapping key spec, the expiry as of
// now, the description, alias and new label against KMS's rules), so the
// command can refuse a bad one before it opens the record or the journal.
func (req RotateRequest) Validate(now time.Time) error {
	if req.KMSKeyID == "" {
		return invalid("--kms-key-id is required: the KMS key (id, ARN or alias/NAME) to rotate")
	}
	if req.WrappingKeySpec != "" {
		if _, err := ParseWrappingKeySpec(string(req.WrappingKeySpec)); err != nil {
			return err
		}
	}
	if err := req.Expiry.Validate(now); err != nil {
		return err
	}
	if err := CheckKeyMaterialDescription(req.Description); err != nil {
		return err
	}
	if req.Alias != "" {
		if err := CheckAlias(req.Alias); err != nil {
			return err
		}
	}
	if req.NewKeyLabel != "" {
		if err := kmsimport.CheckKeyLabel(req.NewKeyLabel); err != nil {
			var ve *kmsimport.ValidationError
			if errors.As(err, &ve) {
				named := *ve
				named.Field = "new-key-label"
				return &named
			}
			return err
		}
	}
	return nil
}

func (ro *rotation) validate(context.Context) (string, error) {
	if ro.rreq.WrappingKeySpec == "" {
		ro.rreq.WrappingKeySpec = types.WrappingKeySpecRsa4096
		ro.req.WrappingKeySpec = ro.rreq.WrappingKeySpec
	}
	req := ro.rreq
	if err := req.Validate(ro.im.now()); err != nil {
		return "", err
	}
	ro.res.ExpirationModel = string(req.Expiry.Model())
	if !req.Expiry.NoExpiry {
		v := req.Expiry.ValidTo.UTC()
		ro.res.ValidTo = &v
	}
	return "request is complete and consistent", nil
}

// check reads the key, its materials and the HSM's generations, decides
// the mode and what an earlier run left, and proves the token can do the
// new generation, all before any change.
func (ro *rotation) check(ctx context.Context) (string, error) {
	home := ro.regions[0]
	k, err := describeLinked(ctx, home, ro.rreq.KMSKeyID)
	if err != nil {
		return "", err
	}
	if k == nil {
		return "", invalid("KMS key %s was not found in %s, or carries no kmsbridge link tags: rotate only rotates keys kmsbridge imported", ro.rreq.KMSKeyID, home.Region)
	}
	tags, err := (&run{im: &Importer{KMS: home.KMS}}).listTags(ctx, k.KeyId)
	if err != nil {
		return "", err
	}
	// The journal first: a rotation of this key this host started and did
	// not finish is finished, whatever name (even an alias already moved
	// to its new key) the request gives.
	if k, tags, err = ro.takeUpIntent(ctx, k, tags); err != nil {
		return "", err
	}
	ro.cur, ro.tags = k, tags
	ro.out.KeyId = k.KeyId
	tok := ro.res.HSM.Token
	if k.TokenSerial != tok.Serial {
		return "", invalid("KMS key %s holds material from token serial %s, not this token (serial %s): rotate it with that token, which keeps its generations", k.KeyId, k.TokenSerial, tok.Serial)
	}
	if k.MultiRegion == string(types.MultiRegionKeyTypeReplica) {
		return "", invalid("KMS key %s in %s is a multi-Region replica: rotate its primary (in its primary Region), with each replica Region as --replica-region", k.KeyId, home.Region)
	}
	spec, err := ParseKeySpec(k.KeySpec)
	if err != nil {
		return "", err
	}
	ro.setSpec(spec)
	ro.usage = types.KeyUsageType(k.KeyUsage)
	ro.res.KeyUsage = k.KeyUsage
	cur := ro.currentMaterial()
	ro.out.OldKeyMaterialId = cur.KeyMaterialId
	if ro.curKey, err = ro.findHSMKey(cur.HSMKeyID, k.HSMKeyID); err != nil {
		return "", err
	}
	ro.out.OldHSMKey = hsmKeyOf(ro.curKey)
	if ro.done != nil {
		if msg, err := ro.alreadyFinished(ctx, spec); err != nil || msg != "" {
			return msg, err
		}
	}
	if ro.intent == nil && ro.rreq.NewKeyLabel != "" && ro.curKey.Label == ro.rreq.NewKeyLabel && ro.tags[TagRotatingTo] == "" {
		ro.out.AlreadyDone = true
		ro.out.Mode = "on-demand"
		if spec.Name != types.KeySpecSymmetricDefault {
			ro.out.Mode = "manual"
			ro.out.NewKeyId = k.KeyId
		}
		ro.out.NewHSMKey = ro.out.OldHSMKey
		ro.out.NewKeyMaterialId = cur.KeyMaterialId
		return fmt.Sprintf("already rotated: HSM key %q backs the current material of KMS key %s; nothing to do", ro.curKey.Label, k.KeyId), nil
	}
	if spec.Name == types.KeySpecSymmetricDefault {
		ro.out.Mode = "on-demand"
		if err := ro.checkOnDemand(ctx); err != nil {
			return "", err
		}
	} else {
		ro.out.Mode = "manual"
		if err := ro.checkManual(ctx); err != nil {
			return "", err
		}
	}
	if _, err := ro.probe(ctx); err != nil {
		return "", err
	}
	next := fmt.Sprintf("new HSM key %q will be generated", ro.newLabel)
	if ro.newKey != nil {
		next = fmt.Sprintf("HSM key %q (CKA_ID %s) from an earlier run will be used", ro.newKey.Label, ro.newKey.IDHex())
	}
	if ro.intent != nil {
		return fmt.Sprintf("finishing the %s rotation of KMS key %s started at %s (journal attempt %s), not starting another; %s",
			ro.out.Mode, k.KeyId, ro.out.StartedAt.Format(time.RFC3339), ro.intent.entry.Attempt, next), nil
	}
	again := ""
	if ro.previous != nil {
		ro.out.PreviousRotation = ro.previous
		again = fmt.Sprintf("; a rotation of this key finished at %s, and this starts a new one", ro.previous.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("KMS key %s (%s, %s) can be rotated %s; %s%s", k.KeyId, k.KeySpec, k.KeyState, ro.out.Mode, next, again), nil
}

func (ro *rotation) currentMaterial() Material {
	for _, m := range ro.cur.Materials {
		if m.State == string(types.KeyMaterialStateCurrent) {
			return m
		}
	}
	return Material{HSMKeyID: ro.cur.HSMKeyID}
}

// findHSMKey finds the HSM key by CKA_ID hex, falling back to fallback.
func (ro *rotation) findHSMKey(idHex, fallback string) (*hsm.Key, error) {
	if idHex == "" {
		idHex = fallback
	}
	id, err := hex.DecodeString(idHex)
	if err != nil || len(id) == 0 {
		return nil, invalid("KMS key %s: its tags name HSM key CKA_ID %q, which is not hex", ro.cur.KeyId, idHex)
	}
	k, err := ro.im.Token.FindKey(hsm.KeySelector{ID: id}, ro.spec.HSM)
	if err != nil {
		return nil, fmt.Errorf("KMS key %s's material comes from HSM key CKA_ID %s: %w", ro.cur.KeyId, idHex, err)
	}
	return k, nil
}

var generationRE = lazyre.New(`^(.*)-r([0-9]+)$`)

// nextLabel derives the next generation's label: LABEL-r2, LABEL-r3, ...
func nextLabel(label string) string {
	if m := generationRE.FindStringSubmatch(label); m != nil {
		n, _ := strconv.Atoi(m[2])
		return fmt.Sprintf("%s-r%d", m[1], n+1)
	}
	return label + "-r2"
}

// chooseNewKey finds the HSM key an earlier run generated (by the
// rotating-to tag, or by the derived label when it backs no material yet),
// or settles the label to generate. A key under the label is used only
// when the ownership authority says so: it backs no other KMS key (inUse
// decides, from this KMS key's materials and the keys linked to it), and
// it is kmsbridge's (generated in the token, never in the clear, and named
// by this host's journal or record) or adopted with --adopt.
func (ro *rotation) chooseNewKey(ctx context.Context, inUse func(*hsm.Key, ownership.Links) bool) error {
	ro.newLabel = ro.rreq.NewKeyLabel
	if ro.newLabel == "" {
		ro.newLabel = nextLabel(ro.curKey.Label)
	}
	// One search, as an import makes: is the label taken, and by a key of
	// this spec's kind?
	k, taken, err := ro.im.Token.FindByLabel(ro.newLabel, ro.spec.HSM)
	switch {
	case err != nil:
		return fmt.Errorf("%w: choose another --new-key-label", err)
	case !taken:
		return nil
	case k == nil:
		return fmt.Errorf("%w: token %q has objects labelled %q but no %s key: choose another --new-key-label", hsm.ErrKeyNotFound, ro.res.HSM.Token.Label, ro.newLabel, ro.spec.HSM)
	}
	owner := ro.owner()
	links, err := owner.LinkedKMSKeys(ctx, NewKMSView(ro.regions[0].KMS, ro.im.Tagging), k.IDHex())
	if err != nil {
		return err
	}
	if inUse(k, links) {
		held := "other KMS material"
		if all := links.All(); len(all) > 0 {
			held = "the material of KMS key(s) " + strings.Join(all, ", ")
		}
		return fmt.Errorf("%w: token %q already has key %q (CKA_ID %s) holding %s: one HSM key never backs two KMS keys; choose another --new-key-label", hsm.ErrLabelExists, ro.res.HSM.Token.Label, k.Label, k.IDHex(), held)
	}
	if _, err := owner.GeneratedKey(ro.newLabel, k, fmt.Sprintf("choose another --new-key-label, or take it over on purpose (recorded, with its provenance): kmsbridge rotate --kms-key-id %s --new-key-label %s --adopt", ro.cur.KeyId, ro.newLabel)); err != nil {
		return err
	}
	if err := hsm.CheckForImport(k, ro.spec.HSM); err != nil {
		return err
	}
	ro.newKey = k
	return nil
}

func hsmKeyOf(k *hsm.Key) kmsimport.HSMKey {
	if k == nil {
		return kmsimport.HSMKey{}
	}
	return kmsimport.HSMKey{KeyLabel: k.Label, KeyID: k.IDHex(), KeyCheckValue: k.CheckValueHex()}
}

// checkOnDemand: an Enabled symmetric key with rotations to spare; a
// pending material only when an earlier kmsbridge run left it; replicas
// reachable.
func (ro *rotation) checkOnDemand(ctx context.Context) error {
	k := ro.cur
	if k.KeyState != string(types.KeyStateEnabled) {
		return invalid("KMS key %s is %s: on-demand rotation needs an Enabled key (renew its material first with kmsbridge renew --kms-key-id %s)", k.KeyId, k.KeyState, k.KeyId)
	}
	backed := map[string]bool{}
	for _, m := range k.Materials {
		if m.RotationDate != nil {
			ro.out.Rotations++
		}
		if strings.HasPrefix(m.State, "PENDING") {
			m := m
			ro.pending = &m
		} else if m.HSMKeyID != "" {
			backed[m.HSMKeyID] = true
		}
	}
	tags := ro.tags
	cur := ro.currentMaterial()
	var err error
	// to is the new HSM key the journal's open rotation names (confirmed
	// by takeUpIntent); the tags say the same while they are there.
	to := ""
	if ro.intent != nil {
		to = ro.intent.get(riToHSMKeyID)
	}
	if ro.pending == nil && to != "" && cur.HSMKeyID == to {
		// KMS rotated to the new material; the run stopped before it
		// verified and closed the rotation (perhaps after untagging).
		ro.finishing = true
		ro.newKey, ro.newLabel = ro.curKey, ro.curKey.Label
		ro.out.NewKeyMaterialId, ro.out.OldKeyMaterialId = cur.KeyMaterialId, ro.intent.get(riFromMaterialID)
		ro.out.OldHSMKey = kmsimport.HSMKey{KeyID: ro.intent.get(riFromHSMKeyID), KeyLabel: ro.intent.get(riFromHSMKeyLabel)}
	} else if rt := tags[TagRotatingTo]; ro.pending == nil && rt != "" && cur.HSMKeyID == rt && cur.RotationDate != nil {
		// Rotated by KMS; the run stopped before untagging and verifying.
		ro.finishing = true
		ro.newKey, ro.newLabel = ro.curKey, ro.curKey.Label
		ro.out.NewKeyMaterialId, ro.out.OldKeyMaterialId = cur.KeyMaterialId, ""
		ro.out.OldHSMKey = kmsimport.HSMKey{}
	} else if ro.pending != nil {
		rt := tags[TagRotatingTo]
		if rt == "" {
			rt = to
		}
		if rt == "" {
			return invalid("KMS key %s has material %s in state %s that kmsbridge did not import: finish or undo that rotation first (aws kms rotate-key-on-demand, or aws kms delete-imported-key-material --key-material-id)", k.KeyId, ro.pending.KeyMaterialId, ro.pending.State)
		}
		if ro.newKey, err = ro.findHSMKey(rt, ""); err != nil {
			return err
		}
		ro.newLabel = ro.newKey.Label
	} else if ro.out.Rotations >= MaxOnDemandRotations {
		return invalid("KMS key %s has had %d on-demand rotations, KMS's limit: rotate it manually to a new KMS key instead", k.KeyId, ro.out.Rotations)
	} else if rt := tags[TagRotatingTo]; rt != "" && !backed[rt] {
		// An earlier run generated and tagged the key, then stopped before
		// the import.
		if ro.newKey, err = ro.findHSMKey(rt, ""); err != nil {
			return err
		}
		ro.newLabel = ro.newKey.Label
	} else if to != "" && !backed[to] {
		// The open rotation generated the key, then stopped before it
		// tagged the KMS key.
		if ro.newKey, err = ro.findHSMKey(to, ""); err != nil {
			return err
		}
		ro.newLabel = ro.newKey.Label
	} else if err := ro.chooseNewKey(ctx, func(h *hsm.Key, l ownership.Links) bool {
		return backed[h.IDHex()] || h.IDHex() == k.HSMKeyID || len(l.All()) > 0
	}); err != nil {
		return err
	}
	if err := ro.checkTagRoom(); err != nil {
		return err
	}
	if k.MultiRegion == string(types.MultiRegionKeyTypePrimary) {
		d, err := ro.regions[0].KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.KeyId)})
		if err != nil {
			return explain("DescribeKey", err)
		}
		for _, rep := range d.KeyMetadata.MultiRegionConfiguration.ReplicaKeys {
			r := aws.ToString(rep.Region)
			if ro.regional(r) == nil {
				return invalid("KMS key %s has a replica in %s: the same new material must be imported there too, so give --replica-region %s", k.KeyId, r, r)
			}
			ro.out.Replicas = append(ro.out.Replicas, r)
		}
	}
	return nil
}

func (ro *rotation) regional(region string) API {
	for _, rg := range ro.regions {
		if rg.Region == region {
			return rg.KMS
		}
	}
	return nil
}

// onDemand runs the changing steps of a symmetric rotation, each skipped
// when an earlier run already did it.
func (ro *rotation) onDemand(ctx context.Context) error {
	k := ro.cur
	api := ro.regions[0].KMS
	ro.res.KeyId, ro.res.Arn = k.KeyId, k.Arn
	ro.req.KMSKeyID = k.KeyId
	ro.req.KeyMaterialDescription = ro.rreq.Description
	if ro.newKey != nil {
		ro.setKey(ro.newKey, false)
	}
	ro.req.KeyLabel = ro.newLabel
	ro.req.ImportType = types.ImportTypeNewKeyMaterial
	err := ro.runSteps(ctx, []kmsimport.Step{
		{Name: StepGenerate, Run: func(ctx context.Context) (string, error) {
			msg, err := ro.generate(ctx)
			if err == nil {
				err = ro.progress(map[string]string{riToHSMKeyID: ro.key.IDHex()})
			}
			return msg, err
		}, Skip: ro.newKey != nil},
		{Name: StepTagRotating, Run: func(ctx context.Context) (string, error) {
			return ro.tagKey(ctx, api, k.KeyId, TagRotatingTo, ro.key.IDHex())
		}, Skip: ro.finishing},
		{Name: StepGetParameters, Run: ro.getParameters, Skip: ro.pending != nil || ro.finishing},
		{Name: StepWrap, Run: ro.wrap, Skip: ro.pending != nil || ro.finishing},
		{Name: StepImport, Run: func(ctx context.Context) (string, error) {
			msg, err := ro.importMaterial(ctx)
			if err == nil {
				err = ro.progress(map[string]string{riNewMaterialID: ro.res.KeyMaterialId})
			}
			return msg, err
		}, Skip: ro.pending != nil || ro.finishing},
		{Name: StepTagMaterial, Run: func(ctx context.Context) (string, error) {
			if ro.pending != nil {
				ro.res.KeyMaterialId = ro.pending.KeyMaterialId
			}
			if ro.finishing {
				ro.res.KeyMaterialId = ro.out.NewKeyMaterialId
			}
			ro.out.NewKeyMaterialId = ro.res.KeyMaterialId
			return ro.tagKey(ctx, api, k.KeyId, MaterialTag(ro.res.KeyMaterialId), ro.key.IDHex())
		}},
		{Name: StepReplicas, Run: ro.importReplicas, Skip: len(ro.out.Replicas) == 0},
		{Name: StepRotateOnDmd, Run: ro.rotateOnDemand},
		{Name: StepWaitRotation, Run: ro.waitRotation},
		{Name: StepUntagRotating, Run: func(ctx context.Context) (string, error) {
			_, err := ro.do(ctx, change{
				op:     "UntagResource",
				target: map[string]string{"KmsKeyId": k.KeyId, "TagKey": TagRotatingTo},
				call: func(ctx context.Context, _ string) (map[string]string, error) {
					_, err := api.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(k.KeyId), TagKeys: []string{TagRotatingTo}})
					return nil, err
				},
				// Removing a tag that is gone changes nothing more.
			})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("removed %s: material %s has its own tag", TagRotatingTo, shortID(ro.out.NewKeyMaterialId)), nil
		}},
		{Name: StepVerify, Run: ro.verifyRotation},
		{Name: StepCloseRotation, Run: ro.closeIntent},
	})
	ro.out.NewHSMKey = hsmKeyOf(ro.key)
	if err != nil {
		var se *kmsimport.StepError
		if errors.As(err, &se) {
			se.Resume = fmt.Sprintf("fix the cause above and run the same kmsbridge rotate --kms-key-id %s again: it finds the HSM key %q and any material already imported, and continues from there", k.KeyId, ro.newLabel)
		}
	}
	return err
}

// tagKey sets one tag on a KMS key, journaled.
func (r *run) tagKey(ctx context.Context, api API, keyID, tag, value string) (string, error) {
	_, err := r.do(ctx, change{
		op:     "TagResource",
		target: map[string]string{"KmsKeyId": keyID, "TagKey": tag, "TagValue": value},
		call: func(ctx context.Context, _ string) (map[string]string, error) {
			_, err := api.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(keyID), Tags: []types.Tag{{TagKey: aws.String(tag), TagValue: aws.String(value)}}})
			return nil, err
		},
		// Tagging again with the same tag changes nothing more.
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("tagged KMS key %s %s=%s", keyID, tag, value), nil
}

// importReplicas imports the new material into every replica (ImportType
// EXISTING_KEY_MATERIAL with its KeyMaterialId), skipping replicas that
// already have it.
func (ro *rotation) importReplicas(ctx context.Context) (string, error) {
	for _, region := range ro.out.Replicas {
		api := ro.regional(region)
		have, err := hasMaterial(ctx, api, ro.cur.KeyId, ro.out.NewKeyMaterialId)
		if err != nil {
			return "", err
		}
		if !have {
			sub := *ro.im
			sub.KMS, sub.Observe = api, nil
			rr := &run{im: &sub, req: &Request{WrappingKeySpec: ro.req.WrappingKeySpec, Expiry: ro.req.Expiry, KMSKeyID: ro.cur.KeyId,
				ImportType: types.ImportTypeExistingKeyMaterial, KeyMaterialId: ro.out.NewKeyMaterialId, KeyMaterialDescription: ro.req.KeyMaterialDescription},
				res: &Result{KeyId: ro.cur.KeyId}, wrapping: ro.wrapping}
			rr.res.HSM.Token = ro.res.HSM.Token
			rr.setSpec(ro.spec)
			rr.setKey(ro.key, false)
			for _, f := range []func(context.Context) (string, error){rr.getParameters, rr.wrap, rr.importMaterial} {
				if _, err := f(ctx); err != nil {
					return "", fmt.Errorf("replica in %s: %w", region, err)
				}
			}
		}
		if _, err := ro.tagKey(ctx, api, ro.cur.KeyId, MaterialTag(ro.out.NewKeyMaterialId), ro.key.IDHex()); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("imported the same material into the replicas in %s", strings.Join(ro.out.Replicas, ", ")), nil
}

// hasMaterial reports whether keyID lists materialID as imported.
func hasMaterial(ctx context.Context, api API, keyID, materialID string) (bool, error) {
	ms, err := rotations(ctx, api, keyID)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if aws.ToString(m.KeyMaterialId) == materialID && m.ImportState != types.ImportStatePendingImport {
			return true, nil
		}
	}
	return false, nil
}

func rotations(ctx context.Context, api API, keyID string) ([]types.RotationsListEntry, error) {
	var all []types.RotationsListEntry
	p := kms.NewListKeyRotationsPaginator(api, &kms.ListKeyRotationsInput{KeyId: aws.String(keyID), IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, explain("ListKeyRotations", err)
		}
		all = append(all, page.Rotations...)
	}
	return all, nil
}

// materialState is the state of materialID in keyID, or "".
func materialState(ctx context.Context, api API, keyID, materialID string) (types.KeyMaterialState, error) {
	ms, err := rotations(ctx, api, keyID)
	if err != nil {
		return "", err
	}
	for _, m := range ms {
		if aws.ToString(m.KeyMaterialId) == materialID {
			return m.KeyMaterialState, nil
		}
	}
	return "", nil
}

func (ro *rotation) rotateOnDemand(ctx context.Context) (string, error) {
	api := ro.regions[0].KMS
	st, err := materialState(ctx, api, ro.cur.KeyId, ro.out.NewKeyMaterialId)
	if err != nil {
		return "", err
	}
	if st == types.KeyMaterialStateCurrent {
		return fmt.Sprintf("material %s is already current (an earlier run rotated)", shortID(ro.out.NewKeyMaterialId)), nil
	}
	// A ciphertext under the old material, to show after the rotation that
	// it still decrypts.
	enc, err := api.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ro.cur.KeyId), Plaintext: []byte("kmsbridge rotation probe")})
	if err != nil {
		return "", explain("Encrypt", err)
	}
	ro.probeCT = enc.CiphertextBlob
	_, err = ro.do(ctx, change{
		op:     "RotateKeyOnDemand",
		target: map[string]string{"KmsKeyId": ro.cur.KeyId, "KeyMaterialId": ro.out.NewKeyMaterialId},
		call: func(ctx context.Context, _ string) (map[string]string, error) {
			_, err := api.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(ro.cur.KeyId)})
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "ConflictException" {
				// A rotation is already under way. An imported key has no
				// automatic rotation, so an earlier request of this rotation
				// started it (its answer lost, or the process stopped), and
				// it rotates to the one pending material, ours:
				// waitRotation checks that it ends with that material CURRENT.
				return map[string]string{"AlreadyInProgress": "true"}, nil
			}
			if errors.As(err, &ae) && ae.ErrorCode() == "KMSInvalidStateException" {
				// No material pending any more: the rotation an earlier
				// run started ended between the check above and this
				// request. Ours is done when our material is CURRENT.
				if st, serr := materialState(ctx, api, ro.cur.KeyId, ro.out.NewKeyMaterialId); serr == nil && st == types.KeyMaterialStateCurrent {
					return map[string]string{"AlreadyRotated": "true"}, nil
				}
			}
			return nil, err
		},
		// A lost answer is settled once the material is CURRENT; while it
		// is still pending the request is sent again, which KMS refuses
		// harmlessly if the first one is under way.
		settle: func(ctx context.Context, _ string) (bool, map[string]string, error) {
			st, err := materialState(ctx, api, ro.cur.KeyId, ro.out.NewKeyMaterialId)
			return st == types.KeyMaterialStateCurrent, nil, err
		},
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("asked KMS to rotate %s to material %s", ro.cur.KeyId, shortID(ro.out.NewKeyMaterialId)), nil
}

// waitRotation polls ListKeyRotations with backoff until the new material
// is CURRENT, or the wait bound passes.
func (ro *rotation) waitRotation(ctx context.Context) (string, error) {
	api := ro.regions[0].KMS
	wait, poll := ro.rreq.Wait, ro.rreq.Poll
	if wait <= 0 {
		wait = 10 * time.Minute
	}
	if poll <= 0 {
		poll = time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		st, err := materialState(ctx, api, ro.cur.KeyId, ro.out.NewKeyMaterialId)
		if err != nil {
			return "", err
		}
		if st == types.KeyMaterialStateCurrent {
			return fmt.Sprintf("material %s is CURRENT", shortID(ro.out.NewKeyMaterialId)), nil
		}
		if time.Now().Add(poll).After(deadline) {
			return "", fmt.Errorf("%w: material %s is still %s after %s: KMS completes rotations asynchronously; run the same rotate again later to finish", ErrKMSPending, shortID(ro.out.NewKeyMaterialId), st, wait)
		}
		if ro.im.Log != nil {
			ro.im.Log.Info("waiting for the rotation to complete", "state", st, "next poll", poll)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(poll):
		}
		if poll *= 2; poll > 10*time.Second {
			poll = 10 * time.Second
		}
	}
}

// ErrKMSPending means KMS had not finished an asynchronous change when the
// wait ended; nothing is wrong, and a re-run finishes.
var ErrKMSPending = &kmsimport.KMSError{Op: "ListKeyRotations", Message: "rotation not complete yet", Transient: true}

// verifyRotation shows a new ciphertext uses the new material and the
// probe made before the rotation still decrypts under the old one.
func (ro *rotation) verifyRotation(ctx context.Context) (string, error) {
	api := ro.regions[0].KMS
	enc, err := api.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ro.cur.KeyId), Plaintext: []byte("kmsbridge rotation check")})
	if err != nil {
		return "", explain("Encrypt", err)
	}
	dec, err := api.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(ro.cur.KeyId), CiphertextBlob: enc.CiphertextBlob})
	if err != nil {
		return "", explain("Decrypt", err)
	}
	if id := aws.ToString(dec.KeyMaterialId); id != "" && id != ro.out.NewKeyMaterialId {
		return "", fmt.Errorf("%w: a new ciphertext decrypted under material %s, not the new %s", kmsimport.ErrVerification, id, ro.out.NewKeyMaterialId)
	}
	msg := "a new ciphertext uses material " + shortID(ro.out.NewKeyMaterialId)
	if ro.probeCT != nil {
		old, err := api.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(ro.cur.KeyId), CiphertextBlob: ro.probeCT})
		if err != nil {
			return "", fmt.Errorf("%w: a ciphertext made before the rotation no longer decrypts: %v", kmsimport.ErrVerification, explain("Decrypt", err))
		}
		if id := aws.ToString(old.KeyMaterialId); id != "" && ro.out.OldKeyMaterialId != "" && id != ro.out.OldKeyMaterialId {
			return "", fmt.Errorf("%w: a ciphertext made before the rotation decrypted under material %s, not the old %s", kmsimport.ErrVerification, id, ro.out.OldKeyMaterialId)
		}
		msg += "; one made before the rotation still decrypts under " + shortID(ro.out.OldKeyMaterialId)
	}
	ro.out.Verification = msg
	return msg, nil
}

// WriteSummary writes what rotate did.
func (res *RotateResult) WriteSummary(w io.Writer) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %-24s %s\n", k, v)
		}
	}
	switch {
	case res.AlreadyDone && res.FinishedAt != nil:
		fmt.Fprintf(w, "Already rotated: this %s rotation finished at %s; nothing was changed. To rotate the key again now, run the same command with --new-rotation.\n", res.Mode, res.FinishedAt.UTC().Format(time.RFC3339))
	case res.AlreadyDone:
		fmt.Fprintf(w, "Already rotated (%s): nothing was changed.\n", res.Mode)
	case res.DryRun:
		fmt.Fprintf(w, "Dry run (%s rotation): nothing was changed.\n", res.Mode)
	case res.Resumed && res.StartedAt != nil:
		fmt.Fprintf(w, "Finished the rotation started at %s (%s); no other rotation was started.\n", res.StartedAt.UTC().Format(time.RFC3339), res.Mode)
	default:
		fmt.Fprintf(w, "Rotation complete (%s).\n", res.Mode)
	}
	if res.PreviousRotation != nil {
		row("previous rotation", "finished at "+res.PreviousRotation.UTC().Format(time.RFC3339)+"; this run started a new one")
	}
	row("KMS key", res.KeyId+" ("+res.Region+")")
	row("new KMS key", res.NewKeyId)
	row("alias", res.AliasName)
	row("old material", res.OldKeyMaterialId)
	row("new material", res.NewKeyMaterialId)
	row("old HSM key", fmt.Sprintf("%q CKA_ID %s", res.OldHSMKey.KeyLabel, res.OldHSMKey.KeyID))
	if res.NewHSMKey.KeyID != "" {
		row("new HSM key", fmt.Sprintf("%q CKA_ID %s", res.NewHSMKey.KeyLabel, res.NewHSMKey.KeyID))
	}
	row("replica Regions", strings.Join(res.Replicas, ", "))
	row("verified", res.Verification)
	if res.Mode == "on-demand" {
		fmt.Fprintln(w, "The HSM keeps every generation: old ciphertexts need the old material.")
	} else {
		fmt.Fprintln(w, "The old KMS key is kept (and tagged kmsbridge:rotated-to): ciphertexts and signatures made with it still need it.")
	}
}

// checkTagRoom refuses, before any change, a rotation whose tags would not
// fit on the KMS key: it adds kmsbridge:rotating-to and a
// kmsbridge:material: tag (then removes rotating-to), and KMS holds at
// most Rules.TagsPerKey tags per key. Without this, TagResource would fail
// after the new HSM key was generated.
func (ro *rotation) checkTagRoom() error {
	if ro.finishing {
		return nil
	}
	need := 2
	if ro.tags[TagRotatingTo] != "" {
		need = 1
	}
	if have := len(ro.tags); have+need > Rules.TagsPerKey {
		return invalid("KMS key %s carries %d tags and this rotation adds %d (%s and a %s tag), past KMS's %d per key: remove %d of its own tags first (aws kms untag-resource --key-id %s --tag-keys ...)",
			ro.cur.KeyId, have, need, TagRotatingTo, TagMaterialPrefix, Rules.TagsPerKey, have+need-Rules.TagsPerKey, ro.cur.KeyId)
	}
	return nil
}
