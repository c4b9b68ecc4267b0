package ownership

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/kmsbridge/kmsbridge/journal"
)

// The kmsbridge tags on a KMS key that ownership reads (kmsimport sets
// them; it uses these constants).
const (
	// TagAttempt is sent in the same CreateKey with the journal's attempt
	// id.
	TagAttempt = "kmsbridge:attempt"
	// TagHSMKeyID and TagTokenSerial link a KMS key to its HSM master copy.
	TagHSMKeyID    = "kmsbridge:hsm-key-id"
	TagTokenSerial = "kmsbridge:token-serial"
)

// KMSKey is what ownership needs to know of a KMS key.
type KMSKey struct {
	ID string
	// Usable: not pending deletion, origin EXTERNAL.
	Usable bool
	Tags   map[string]string
}

// ErrNoTagSearch is what KMSView.ByTags returns when the KMS side offers
// no search by tag (the Resource Groups Tagging API is not reachable).
var ErrNoTagSearch = errors.New("no search by tag")

// KMSView is the read-only access to one KMS account and Region that
// ownership decisions need. Its cost per question is what it finds, never
// the size of the account: Key reads one key, ByTags asks the Resource
// Groups Tagging API for the keys carrying every tag given.
type KMSView interface {
	// Key reads one key with its tags; nil when it does not exist.
	Key(ctx context.Context, id string) (*KMSKey, error)
	// ByAttempt finds the key carrying the attempt tag, "" when none: used
	// only to settle a CreateKey whose answer this host's journal shows
	// lost.
	ByAttempt(ctx context.Context, attempt string) (string, error)
	// ByTags lists the ids of the keys carrying every tag, or
	// ErrNoTagSearch.
	ByTags(ctx context.Context, tags map[string]string) ([]string, error)
}

// Links is the answer to "which KMS keys does this HSM key back".
type Links struct {
	// Ours are the usable keys this host's journal shows kmsbridge creating
	// (or tagging, or adopting on purpose) from the HSM key, whose link
	// tags still name it.
	Ours []string
	// Foreign are the usable keys that carry the HSM key's link tags but
	// that this host's journal does not show kmsbridge making: another
	// host's work, or someone else's.
	Foreign []string
	// Searched says whether KMS was searched by tag for Foreign; false
	// when the KMS side offers no tag search.
	Searched bool
}

// All is Ours and Foreign together.
func (l Links) All() []string { return append(append([]string(nil), l.Ours...), l.Foreign...) }

// kmsEvidence lists, from this host's journal, the KMS keys kmsbridge
// created from (or tagged with, or adopted for) HSM key hsmKeyID of this
// token: key id to how it is known. Attempts whose CreateKey answer was
// lost are returned apart, to be found by their attempt tag.
func (a *Authority) kmsEvidence(hsmKeyID string) (known map[string]string, lost []string) {
	known = map[string]string{}
	if a == nil {
		return known, nil
	}
	for id, h := range a.RecordKMS {
		if hsmKeyID == "" || h == hsmKeyID {
			known[id] = "the ceremony record shows kmsbridge creating it"
		}
	}
	for att, h := range a.RecordAttempts {
		if hsmKeyID == "" || h == hsmKeyID {
			lost = append(lost, att)
		}
	}
	if a.Journal == nil {
		return known, lost
	}
	match := func(e journal.Entry) bool {
		return (hsmKeyID == "" || e.Target["HsmKeyId"] == hsmKeyID) && (e.Target["TokenSerial"] == "" || e.Target["TokenSerial"] == a.TokenSerial)
	}
	for _, in := range a.Journal.Intents("CreateKey", match) {
		if in.Target["HsmKeyId"] == "" && hsmKeyID != "" {
			continue
		}
		out, ok := a.Journal.Outcome(in.Attempt)
		switch {
		case ok && out.Result == journal.ResultOK && out.Facts["KmsKeyId"] != "":
			known[out.Facts["KmsKeyId"]] = "journal attempt " + in.Attempt + " created it"
		case !ok || out.Result == journal.ResultUnknown:
			lost = append(lost, in.Attempt)
		}
	}
	for _, in := range a.Journal.Intents("TagResource", match) {
		if id := in.Target["KmsKeyId"]; id != "" && in.Target["HsmKeyId"] != "" {
			if out, ok := a.Journal.Outcome(in.Attempt); !ok || out.Result != journal.ResultFailed {
				known[id] = "journal attempt " + in.Attempt + " linked it to the HSM key"
			}
		}
	}
	for _, e := range a.Journal.Entries() {
		f := e.Facts
		if e.Kind == journal.KindNote && (e.Op == NoteAdopt || e.Op == "settled CreateKey") && f["KmsKeyId"] != "" {
			if e.Op == NoteAdopt && (f["Kind"] != "kms-key" || (hsmKeyID != "" && f["HsmKeyId"] != hsmKeyID)) {
				continue
			}
			if e.Op == "settled CreateKey" && hsmKeyID != "" {
				continue // found through its CreateKey intent's attempt tag
			}
			known[f["KmsKeyId"]] = "journal " + e.Op + " note " + e.Attempt
		}
	}
	return known, lost
}

// createdHere says how this host's journal knows KMS key id (with tags),
// or false.
func (a *Authority) createdHere(id string, tags map[string]string) (string, bool) {
	known, _ := a.kmsEvidence("")
	if how, ok := known[id]; ok {
		return how, true
	}
	if att := tags[TagAttempt]; att != "" && a != nil {
		if _, ok := a.RecordAttempts[att]; ok {
			return "the ceremony record shows attempt " + att + " creating it (its answer was lost)", true
		}
	}
	if att := tags[TagAttempt]; att != "" && a != nil && a.Journal != nil {
		if in := a.Journal.Intents("CreateKey", func(e journal.Entry) bool { return e.Attempt == att }); len(in) > 0 {
			return "journal attempt " + att + " created it (its answer was lost)", true
		}
	}
	return "", false
}

// KMSKeyOurs decides whether KMS key k may be changed as kmsbridge's own
// copy of HSM key hsmKeyID (hex) of this token: its tags carry the link to
// that HSM key and token, or a kmsbridge attempt tag, AND this host's
// journal shows kmsbridge creating it, tagging it, or adopting it on
// purpose. adopt is the command that takes it over on purpose; with
// Authority.Adopt the key is taken and the journal notes it.
func (a *Authority) KMSKeyOurs(k *KMSKey, hsmKeyID, adopt string) error {
	tags := k.Tags
	linked := tags[TagHSMKeyID] == hsmKeyID && tags[TagTokenSerial] == a.serial()
	how, here := a.createdHere(k.ID, tags)
	if (linked || tags[TagAttempt] != "") && here {
		return nil
	}
	if a != nil && a.Adopt {
		return a.NoteAdoptKMS(k, hsmKeyID)
	}
	why := "this host's journal shows no kmsbridge run creating, tagging or adopting it"
	if here {
		why = how + ", but its tags no longer link it to HSM key CKA_ID " + hsmKeyID + " on token serial " + a.serial()
	}
	return &NotOursError{
		What:  "KMS key " + k.ID,
		Found: "tags " + tagList(tags),
		Why:   why,
		Fix:   "if it is yours, take it over on purpose (recorded): " + adopt + "; if not, remove its kmsbridge tags or schedule its deletion",
		Kind:  ErrNotOurs,
	}
}

// NoteAdoptKMS records, in the journal, the operator's take-over of KMS
// key k for HSM key hsmKeyID.
func (a *Authority) NoteAdoptKMS(k *KMSKey, hsmKeyID string) error {
	if a.DryRun {
		return nil
	}
	facts := map[string]string{"Kind": "kms-key", "KmsKeyId": k.ID, "HsmKeyId": hsmKeyID, "TokenSerial": a.serial(), "Tags": tagList(k.Tags)}
	if err := a.Journal.Note(a.command(), NoteAdopt, facts); err != nil {
		return fmt.Errorf("the journal could not record the adoption of KMS key %s, so it was not adopted: %w", k.ID, err)
	}
	return nil
}

// LinkedKMSKeys answers "does HSM key hsmKeyID (hex) of this token already
// back a KMS key": first from this host's journal (each key it names read
// once, to check it still exists and still carries the link), then, for
// keys made elsewhere, by one tag search. Its cost is what it finds; it
// never reads the tags of every key in the account.
func (a *Authority) LinkedKMSKeys(ctx context.Context, view KMSView, hsmKeyID string) (Links, error) {
	var l Links
	known, lost := a.kmsEvidence(hsmKeyID)
	for _, att := range lost {
		id, err := view.ByAttempt(ctx, att)
		if err != nil {
			return l, err
		}
		if id != "" {
			known[id] = "journal attempt " + att + " created it (its answer was lost)"
		}
	}
	ids := make([]string, 0, len(known))
	for id := range known {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	seen := map[string]bool{}
	for _, id := range ids {
		k, err := view.Key(ctx, id)
		if err != nil {
			return l, err
		}
		if k == nil || !k.Usable || k.Tags[TagHSMKeyID] != hsmKeyID || k.Tags[TagTokenSerial] != a.serial() {
			continue
		}
		if !seen[k.ID] {
			seen[k.ID] = true
			l.Ours = append(l.Ours, k.ID)
		}
	}
	tagged, err := view.ByTags(ctx, map[string]string{TagHSMKeyID: hsmKeyID, TagTokenSerial: a.serial()})
	if errors.Is(err, ErrNoTagSearch) {
		return l, nil
	}
	if err != nil {
		return l, err
	}
	l.Searched = true
	for _, id := range tagged {
		if seen[id] {
			continue
		}
		k, err := view.Key(ctx, id)
		if err != nil {
			return l, err
		}
		if k == nil || !k.Usable || seen[k.ID] {
			continue
		}
		seen[k.ID] = true
		l.Foreign = append(l.Foreign, k.ID)
	}
	return l, nil
}

func tagList(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		if strings.HasPrefix(k, "kmsbridge:") {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "(no kmsbridge tags)"
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+tags[k])
	}
	return strings.Join(parts, " ")
}
