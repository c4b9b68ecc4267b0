package aws

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// A rotation is one intent in the journal of intents, with an identity:
// which KMS key, in which Region, from which HSM key to which, on demand
// or manual, and (once made) the new KMS key. It is written before the
// rotation's first change and closed (outcome "ok") after its
// verification. Its individual calls are journaled as well, under their
// own attempts; this intent is what makes a re-run of rotate finish the
// rotation it belongs to instead of starting another, however the key is
// named (id, ARN, an alias, including an alias the interrupted run already
// moved to the new key).
//
// The journal is input like any other: an intent found there is acted on
// only after KMS and the token confirm what it names (checkIntent).

// OpRotation is the journal operation of a whole rotation.
const OpRotation = "Rotation"

// The steps that open and close the rotation's intent.
const (
	StepOpenRotation  = "open-rotation"
	StepCloseRotation = "close-rotation"
)

// RotationRepeatWindow is how long after a rotation of a key finished a
// rotate of the same key is taken as the same request again (and only
// reports the finished rotation) unless RotateRequest.NewRotation says
// otherwise. Long enough for a ceremony; after it, rotate starts a new
// rotation and says when the last one finished.
const RotationRepeatWindow = 24 * time.Hour

// Fields of a rotation intent's target and progress.
const (
	riKMSKeyID         = "KmsKeyId"
	riKMSKeyArn        = "KmsKeyArn"
	riRegion           = "Region"
	riTokenSerial      = "TokenSerial"
	riMode             = "Mode"
	riFromHSMKeyID     = "FromHsmKeyId"
	riFromHSMKeyLabel  = "FromHsmKeyLabel"
	riFromMaterialID   = "FromKeyMaterialId"
	riToHSMKeyLabel    = "ToHsmKeyLabel"
	riToHSMKeyID       = "ToHsmKeyId"
	riAlias            = "AliasName"
	riReplicas         = "ReplicaRegions"
	riNewKMSKeyID      = "NewKmsKeyId"
	riNewMaterialID    = "NewKeyMaterialId"
	riVerification     = "Verification"
	riAbandonedBecause = "AbandonedBecause"
)

// rotationIntent is one rotation as the journal knows it.
type rotationIntent struct {
	entry journal.Entry
	// facts are the intent's target with its progress over it.
	facts map[string]string
	// p is the open intent, to record progress and close it; nil for a
	// finished one.
	p *journal.Pending
	// finished is when a finished rotation's outcome was written.
	finished time.Time
}

func (ri *rotationIntent) get(k string) string { return ri.facts[k] }

func (ri *rotationIntent) describe() string {
	s := fmt.Sprintf("%s rotation of KMS key %s from HSM key %s", ri.get(riMode), ri.get(riKMSKeyID), ri.get(riFromHSMKeyID))
	to := ri.get(riToHSMKeyID)
	if to == "" {
		to = "(not generated yet)"
	}
	s += fmt.Sprintf(" to HSM key %q %s", ri.get(riToHSMKeyLabel), to)
	if n := ri.get(riNewKMSKeyID); n != "" {
		s += ", new KMS key " + n
	}
	return s
}

// rotationIntents returns the rotations this host's journal holds for
// keyID (as the rotated key or as the new key of a manual rotation, or,
// by rotatedFrom, the key keyID's rotated-from tag names), newest first:
// open ones (no outcome) when open, else finished ones (outcome ok).
func (ro *rotation) rotationIntents(keyID, rotatedFrom string, open bool) []*rotationIntent {
	j := ro.im.Journal
	serial, region := ro.res.HSM.Token.Serial, ro.regions[0].Region
	var out []*rotationIntent
	match := func(e journal.Entry) bool {
		if e.Target[riTokenSerial] != serial || e.Target[riRegion] != region {
			return false
		}
		facts := mergeFacts(e.Target, j.Progress(e.Attempt))
		ri := &rotationIntent{entry: e, facts: facts}
		if open {
			ri.p = j.Reopen(e)
		} else {
			o, ok := j.Outcome(e.Attempt)
			if !ok || o.Result != journal.ResultOK {
				return false
			}
			ri.finished = o.Time
			ri.facts = mergeFacts(facts, o.Facts)
		}
		if ri.get(riKMSKeyID) == keyID || ri.get(riNewKMSKeyID) == keyID || rotatedFrom != "" && ri.get(riKMSKeyID) == rotatedFrom {
			out = append(out, ri)
		}
		return false
	}
	if open {
		j.Unsettled(OpRotation, match)
	} else {
		j.Intents(OpRotation, match)
	}
	return out
}

// takeUpIntent looks in the journal for a rotation of the named key k
// (tagged tags) that this host started and did not finish. It returns the
// key to rotate: k, or the key the open rotation rotates when k is its new
// key (an alias the interrupted run already moved). An open rotation that
// KMS and the token confirm is taken up (ro.intent) and finished; one they
// contradict is refused, or with NewRotation closed as abandoned. Without
// an open one, a rotation of k finished within RotationRepeatWindow is
// kept in ro.done, so that check reports it instead of rotating again.
func (ro *rotation) takeUpIntent(ctx context.Context, k *StatusKMSKey, tags map[string]string) (*StatusKMSKey, map[string]string, error) {
	home := ro.regions[0]
	open := ro.rotationIntents(k.KeyId, tags[TagRotatedFrom], true)
	if len(open) == 0 {
		for _, ri := range ro.rotationIntents(k.KeyId, "", false) {
			// The same request again: no new label, or the one it rotated
			// to. Another label asks for another generation on purpose.
			same := ro.rreq.NewKeyLabel == "" || ro.rreq.NewKeyLabel == ri.get(riToHSMKeyLabel)
			if same && !ro.rreq.NewRotation && ro.im.now().Sub(ri.finished) < RotationRepeatWindow {
				ro.done = ri
			}
			ro.previous = &ri.finished
			break
		}
		return k, tags, nil
	}
	ri := open[0]
	cur, curTags := k, tags
	if id := ri.get(riKMSKeyID); id != k.KeyId {
		var err error
		if cur, err = describeLinked(ctx, home, id); err != nil {
			return nil, nil, err
		}
		if cur != nil {
			if curTags, err = (&run{im: &Importer{KMS: home.KMS}}).listTags(ctx, cur.KeyId); err != nil {
				return nil, nil, err
			}
		}
	}
	why := ro.contradicts(ctx, ri, cur, curTags)
	started := ri.entry.Time.UTC().Format(time.RFC3339)
	if why != "" {
		if !ro.rreq.NewRotation {
			return nil, nil, invalid("the journal %s holds an open %s, started at %s (attempt %s), which KMS and the token do not confirm: %s. The journal may have been edited, or the rotation undone by hand: check it; to close it as abandoned and start a new rotation of %s, run the same rotate with --new-rotation",
				ro.im.Journal.Path(), ri.describe(), started, ri.entry.Attempt, why, k.KeyId)
		}
		if err := ri.p.Done(journal.ResultFailed, map[string]string{riAbandonedBecause: why}, nil); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
		}
		ro.logInfo("closed an open rotation the journal holds as abandoned (--new-rotation)", "started", started, "why", why)
		return k, tags, nil
	}
	if ro.rreq.NewRotation {
		return nil, nil, invalid("%s started at %s and is not finished: finish it first by running the same rotate without --new-rotation", ri.describe(), started)
	}
	if l := ro.rreq.NewKeyLabel; l != "" && l != ri.get(riToHSMKeyLabel) {
		return nil, nil, invalid("%s started at %s and is not finished; --new-key-label %s asks for another: finish it first (kmsbridge rotate --kms-key-id %s --new-key-label %s), then rotate again",
			ri.describe(), started, l, ri.get(riKMSKeyID), ri.get(riToHSMKeyLabel))
	}
	if a := ro.rreq.Alias; a != "" && ri.get(riAlias) != "" && a != ri.get(riAlias) {
		return nil, nil, invalid("%s started at %s, moving alias %s, and is not finished; --alias %s asks for another: finish it first (kmsbridge rotate --kms-key-id %s --alias %s)",
			ri.describe(), started, ri.get(riAlias), a, ri.get(riKMSKeyID), ri.get(riAlias))
	}
	if ro.rreq.NewKeyLabel == "" {
		ro.rreq.NewKeyLabel = ri.get(riToHSMKeyLabel)
	}
	ro.intent = ri
	ro.out.RotationIntent = ri.entry.Attempt
	ro.out.Resumed = true
	st := ri.entry.Time.UTC()
	ro.out.StartedAt = &st
	return cur, curTags, nil
}

// contradicts says what KMS or the token contradict in the open rotation
// ri of key cur (nil when the key is gone), or "" when everything it names
// is as a run of this rotation leaves it.
func (ro *rotation) contradicts(ctx context.Context, ri *rotationIntent, cur *StatusKMSKey, tags map[string]string) string {
	api := ro.regions[0].KMS
	id := ri.get(riKMSKeyID)
	if cur == nil {
		return fmt.Sprintf("KMS key %s is gone or carries no kmsbridge link tags", id)
	}
	if cur.TokenSerial != ro.res.HSM.Token.Serial {
		return fmt.Sprintf("KMS key %s holds material from token %s, not this one", id, cur.TokenSerial)
	}
	mode := "manual"
	if cur.KeySpec == string(types.KeySpecSymmetricDefault) {
		mode = "on-demand"
	}
	if ri.get(riMode) != mode {
		return fmt.Sprintf("KMS key %s (%s) rotates %s, not %s", id, cur.KeySpec, mode, ri.get(riMode))
	}
	from, to := ri.get(riFromHSMKeyID), ri.get(riToHSMKeyID)
	if from == "" || ri.get(riToHSMKeyLabel) == "" {
		return "it names no old HSM key or no new label"
	}
	backs := map[string]bool{cur.HSMKeyID: true}
	var current string
	for _, m := range cur.Materials {
		if m.HSMKeyID != "" {
			backs[m.HSMKeyID] = true
		}
		if m.State == string(types.KeyMaterialStateCurrent) {
			current = m.HSMKeyID
		}
	}
	if !backs[from] {
		return fmt.Sprintf("no material of KMS key %s comes from the old HSM key %s", id, from)
	}
	if to != "" {
		if to == from {
			return "its old and new HSM keys are the same"
		}
		k, err := ro.findHSMKeyOf(to, cur.KeySpec)
		if err != nil {
			return fmt.Sprintf("the new HSM key: %v", err)
		}
		if k.Label != ri.get(riToHSMKeyLabel) {
			return fmt.Sprintf("HSM key %s is labelled %q, not %q", to, k.Label, ri.get(riToHSMKeyLabel))
		}
		links, err := ro.owner().LinkedKMSKeys(ctx, NewKMSView(api, ro.im.Tagging), to)
		if err != nil {
			return err.Error()
		}
		for _, l := range links.All() {
			if l != ri.get(riNewKMSKeyID) || mode == "on-demand" {
				return fmt.Sprintf("the new HSM key %s is linked to KMS key %s, which is not this rotation's", to, l)
			}
		}
	}
	if mode == "on-demand" {
		if current != "" && current != from && current != to {
			return fmt.Sprintf("the current material of KMS key %s comes from HSM key %s, neither the rotation's old nor its new one: it was rotated otherwise since", id, current)
		}
		return ""
	}
	if n := ri.get(riNewKMSKeyID); n != "" {
		s, err := describeLinked(ctx, ro.regions[0], n)
		if err != nil {
			return err.Error()
		}
		if s == nil || s.TokenSerial != ro.res.HSM.Token.Serial || to != "" && s.HSMKeyID != to {
			return fmt.Sprintf("the new KMS key %s is gone or is not linked to the new HSM key %s of this token", n, to)
		}
		st, err := (&run{im: &Importer{KMS: api}}).listTags(ctx, n)
		if err != nil {
			return err.Error()
		}
		if f := st[TagRotatedFrom]; f != "" && f != id {
			return fmt.Sprintf("the new KMS key %s is tagged %s=%s", n, TagRotatedFrom, f)
		}
		if rt := tags[TagRotatedTo]; rt != "" && rt != n {
			return fmt.Sprintf("KMS key %s is tagged %s=%s", id, TagRotatedTo, rt)
		}
	}
	if a := ri.get(riAlias); a != "" {
		target, err := AliasTarget(ctx, api, a)
		if err != nil {
			return err.Error()
		}
		if target != id && (target == "" || target != ri.get(riNewKMSKeyID)) {
			if len(ri.get(riNewKMSKeyID)) == 0 {
				// The new key may exist, made before its id was recorded:
				// the alias points to a key tagged rotated-from this one.
				if target != "" {
					if st, err := (&run{im: &Importer{KMS: api}}).listTags(ctx, target); err == nil && st[TagRotatedFrom] == id {
						return ""
					}
				}
			}
			return fmt.Sprintf("alias %s points to %s, neither KMS key %s nor its new key", a, dash(target), id)
		}
	}
	return ""
}

// findHSMKeyOf finds the HSM key with CKA_ID idHex of key spec spec.
func (ro *rotation) findHSMKeyOf(idHex, spec string) (*hsm.Key, error) {
	ks, err := ParseKeySpec(spec)
	if err != nil {
		return nil, err
	}
	id, err := hex.DecodeString(idHex)
	if err != nil || len(id) == 0 {
		return nil, fmt.Errorf("CKA_ID %q is not hex", idHex)
	}
	return ro.im.Token.FindKey(hsm.KeySelector{ID: id}, ks.HSM)
}

// alreadyFinished reports the rotation ro.done (finished within
// RotationRepeatWindow) when KMS confirms its result: for an on-demand
// rotation the current material comes from its new HSM key; for a manual
// one the old key is tagged rotated-to the new one, which is linked to the
// new HSM key. It returns "" when KMS does not confirm it, and check then
// plans a new rotation, saying so.
func (ro *rotation) alreadyFinished(ctx context.Context, spec KeySpec) (string, error) {
	ri, k := ro.done, ro.cur
	api := ro.regions[0].KMS
	to := ri.get(riToHSMKeyID)
	fin := ri.finished.UTC()
	switch ri.get(riMode) {
	case "on-demand":
		if ri.get(riKMSKeyID) != k.KeyId || spec.Name != types.KeySpecSymmetricDefault || to == "" || ro.currentMaterial().HSMKeyID != to {
			return "", nil
		}
		ro.out.Mode = "on-demand"
		ro.out.NewKeyMaterialId = ro.currentMaterial().KeyMaterialId
		ro.out.OldKeyMaterialId = ri.get(riFromMaterialID)
	case "manual":
		old, nk := ri.get(riKMSKeyID), ri.get(riNewKMSKeyID)
		if nk == "" || (k.KeyId != old && k.KeyId != nk) {
			return "", nil
		}
		ot, err := (&run{im: &Importer{KMS: api}}).listTags(ctx, old)
		if err != nil {
			return "", err
		}
		if ot[TagRotatedTo] != nk {
			return "", nil
		}
		s, err := describeLinked(ctx, ro.regions[0], nk)
		if err != nil {
			return "", err
		}
		if s == nil || s.HSMKeyID != to || s.TokenSerial != ro.res.HSM.Token.Serial {
			return "", nil
		}
		ro.out.Mode, ro.out.KeyId, ro.out.NewKeyId, ro.out.AliasName = "manual", old, nk, ri.get(riAlias)
	default:
		return "", nil
	}
	ro.out.AlreadyDone = true
	ro.out.FinishedAt = &fin
	ro.out.RotationIntent = ri.entry.Attempt
	ro.out.OldHSMKey = kmsimport.HSMKey{KeyID: ri.get(riFromHSMKeyID), KeyLabel: ri.get(riFromHSMKeyLabel)}
	ro.out.NewHSMKey = kmsimport.HSMKey{KeyID: to, KeyLabel: ri.get(riToHSMKeyLabel)}
	ro.out.Verification = ri.get(riVerification)
	return fmt.Sprintf("already rotated: the %s finished at %s (journal attempt %s), and KMS shows its result; nothing to do (to rotate again now, give --new-rotation)",
		ri.describe(), fin.Format(time.RFC3339), ri.entry.Attempt), nil
}

// openRotation is the step that writes the rotation's intent (or says
// which open one this run finishes) before the first change.
func (ro *rotation) openRotation(context.Context) (string, error) {
	if ro.intent != nil {
		return fmt.Sprintf("taking up the %s started at %s (journal attempt %s)", ro.intent.describe(), ro.out.StartedAt.Format(time.RFC3339), ro.intent.entry.Attempt), nil
	}
	if err := ro.openIntent(); err != nil {
		return "", err
	}
	ro.out.RotationIntent = ro.intent.entry.Attempt
	return fmt.Sprintf("journal intent %s: %s", ro.intent.entry.Attempt, ro.intent.describe()), nil
}

// openIntent writes the rotation's intent before its first change, unless
// it takes up an open one.
func (ro *rotation) openIntent() error {
	if ro.intent != nil {
		return nil
	}
	k := ro.cur
	t := map[string]string{
		riKMSKeyID: k.KeyId, riKMSKeyArn: k.Arn, riRegion: ro.regions[0].Region, riTokenSerial: ro.res.HSM.Token.Serial,
		riMode: ro.out.Mode, riFromHSMKeyID: ro.curKey.IDHex(), riFromHSMKeyLabel: ro.curKey.Label,
		riFromMaterialID: ro.out.OldKeyMaterialId, riToHSMKeyLabel: ro.newLabel, riAlias: ro.out.AliasName,
	}
	if ro.newKey != nil {
		t[riToHSMKeyID] = ro.newKey.IDHex()
	}
	if ro.out.NewKeyId != "" {
		t[riNewKMSKeyID] = ro.out.NewKeyId
	}
	if len(ro.out.Replicas) > 0 {
		rs := append([]string(nil), ro.out.Replicas...)
		sort.Strings(rs)
		t[riReplicas] = strings.Join(rs, ",")
	}
	for key, v := range t {
		if v == "" {
			delete(t, key)
		}
	}
	p, err := ro.im.Journal.Intend(journal.Intent{Command: ro.command(), Op: OpRotation, Target: t})
	if err != nil {
		return fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	ro.intent = &rotationIntent{entry: journal.Entry{Attempt: p.Attempt(), Time: p.Time(), Target: t}, facts: t, p: p}
	kmsimport.CrashAt("intent:" + OpRotation)
	return nil
}

// progress records what the rotation learnt (the new HSM key, the new KMS
// key, the new material) under its intent.
func (ro *rotation) progress(facts map[string]string) error {
	if ro.intent == nil {
		return nil
	}
	changed := map[string]string{}
	for k, v := range facts {
		if v != "" && ro.intent.facts[k] != v {
			changed[k] = v
		}
	}
	if len(changed) == 0 {
		return nil
	}
	if err := ro.intent.p.Progress(changed); err != nil {
		return fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	ro.intent.facts = mergeFacts(ro.intent.facts, changed)
	return nil
}

// closeIntent closes the rotation's intent after its verification.
func (ro *rotation) closeIntent(context.Context) (string, error) {
	facts := map[string]string{riNewMaterialID: ro.out.NewKeyMaterialId, riNewKMSKeyID: ro.out.NewKeyId, riVerification: ro.out.Verification}
	if ro.key != nil {
		facts[riToHSMKeyID] = ro.key.IDHex()
	} else if ro.out.NewHSMKey.KeyID != "" {
		facts[riToHSMKeyID] = ro.out.NewHSMKey.KeyID
	}
	for k, v := range facts {
		if v == "" {
			delete(facts, k)
		}
	}
	if err := ro.intent.p.Done(journal.ResultOK, facts, nil); err != nil {
		return "", fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	msg := "rotation finished; its intent in the journal is closed"
	if ro.out.Resumed && ro.out.StartedAt != nil {
		msg = "finished the rotation started at " + ro.out.StartedAt.Format(time.RFC3339) + "; its intent in the journal is closed"
	}
	return msg, nil
}
