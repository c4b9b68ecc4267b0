package aws

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// linkedKMS is a fake KMS holding keys ids, each EXTERNAL, PendingImport,
// SYMMETRIC_DEFAULT, tagged with tags[id].
func linkedKMS(ids []string, tags map[string]map[string]string) *fakeKMS {
	return &fakeKMS{
		listAliases: noAliases,
		listKeys: func(*kms.ListKeysInput) (*kms.ListKeysOutput, error) {
			var out []types.KeyListEntry
			for _, id := range ids {
				out = append(out, types.KeyListEntry{KeyId: aws.String(id)})
			}
			return &kms.ListKeysOutput{Keys: out}, nil
		},
		listResourceTags: func(in *kms.ListResourceTagsInput) (*kms.ListResourceTagsOutput, error) {
			var out []types.Tag
			for k, v := range tags[aws.ToString(in.KeyId)] {
				out = append(out, types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)})
			}
			return &kms.ListResourceTagsOutput{Tags: out}, nil
		},
		describeKey: func(in *kms.DescribeKeyInput) (*kms.DescribeKeyOutput, error) {
			return &kms.DescribeKeyOutput{KeyMetadata: &types.KeyMetadata{KeyId: in.KeyId, Arn: aws.String("arn:" + aws.ToString(in.KeyId)),
				Origin: types.OriginTypeExternal, KeySpec: types.KeySpecSymmetricDefault, KeyState: types.KeyStatePendingImport}}, nil
		},
	}
}

var linkToAB = map[string]string{TagHSMKeyID: "ab", TagTokenSerial: "0001", TagHSMKeyLabel: "k", TagTokenLabel: "fake"}

func existingKeyRequest() Request {
	return Request{KeyLabel: "k", WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}}
}

func TestRunRefusesASecondKMSKeyWhenSeveralAreLinked(t *testing.T) {
	api := linkedKMS([]string{"k1", "k2"}, map[string]map[string]string{"k1": linkToAB, "k2": linkToAB})
	j := createdJournal(t, map[string]string{"k1": "ab", "k2": "ab"})
	_, err := (&Importer{KMS: api, Token: &fakeToken{labels: map[string]bool{"k": true}, sha256: true}, Journal: j}).Run(context.Background(), existingKeyRequest())
	if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "already linked to 2 KMS keys") || !strings.Contains(err.Error(), "--allow-second-kms-key") {
		t.Fatalf("got %v, want a refusal naming both keys and the override", err)
	}
	if slices.Contains(api.calls, "CreateKey") {
		t.Error("CreateKey called for an HSM key already linked to KMS keys")
	}
}

func TestRunTakesUpTheOneLinkedKMSKey(t *testing.T) {
	tags := map[string]map[string]string{"k1": linkToAB, "other": {TagHSMKeyID: "ff", TagTokenSerial: "0001"}}
	api := linkedKMS([]string{"other", "k1"}, tags)
	j := createdJournal(t, map[string]string{"k1": "ab", "other": "ff"})
	res, err := (&Importer{KMS: api, Token: &fakeToken{labels: map[string]bool{"k": true}, sha256: true}, Journal: j, Tagging: fakeTagging(tags)}).Run(context.Background(), existingKeyRequest())
	// The fake has no GetParametersForImport: the run stops there, after
	// deciding which key to use.
	var se *kmsimport.StepError
	if !errors.As(err, &se) || se.Step != StepGetParameters {
		t.Fatalf("got %v, want a stop at %s", err, StepGetParameters)
	}
	if slices.Contains(api.calls, "CreateKey") || res.KeyId != "k1" || res.CreatedKMSKey {
		t.Fatalf("calls %v, key %q created %v: want the linked key k1 taken up", api.calls, res.KeyId, res.CreatedKMSKey)
	}
	if len(res.Resumed) != 1 || !strings.Contains(res.Resumed[0], "k1") || !strings.Contains(err.Error(), "taken up from an earlier run: KMS key k1") {
		t.Fatalf("resumed %v; error:\n%v", res.Resumed, err)
	}
	if strings.Contains(err.Error(), "Nothing was changed") {
		t.Errorf("says nothing was changed although an earlier run made k1:\n%v", err)
	}
}

func TestRunMakesASecondKMSKeyOnlyWhenAskedAndSaysSo(t *testing.T) {
	api := linkedKMS([]string{"k1"}, map[string]map[string]string{"k1": linkToAB})
	api.createKey = func(*kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
		return &kms.CreateKeyOutput{KeyMetadata: &types.KeyMetadata{KeyId: aws.String("k2")}}, nil
	}
	j, err := journal.Open(context.Background(), t.TempDir(), journal.Scope{TokenSerial: "0001", Target: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	res, _ := (&Importer{KMS: api, Token: &fakeToken{labels: map[string]bool{"k": true}, sha256: true}, Journal: j, AllowSecondKMSKey: true,
		Tagging: fakeTagging(map[string]map[string]string{"k1": linkToAB})}).Run(context.Background(), existingKeyRequest())
	if res.KeyId != "k2" || len(res.Warnings) == 0 || !strings.Contains(strings.Join(res.Warnings, " "), "--allow-second-kms-key") {
		t.Fatalf("key %q warnings %v: want a new key k2 and a warning naming the override", res.KeyId, res.Warnings)
	}
	noted := false
	for _, e := range j.Entries() {
		noted = noted || e.Kind == journal.KindNote && e.Op == "allow-second-kms-key"
	}
	if !noted {
		t.Error("the override is not in the journal")
	}
}

// A CreateKey whose answer is lost is found by the attempt tag it carried,
// and not sent again.
func TestLostCreateKeyIsFoundByItsAttemptTag(t *testing.T) {
	tags := map[string]map[string]string{}
	api := linkedKMS(nil, tags)
	var keys []string
	api.listKeys = func(*kms.ListKeysInput) (*kms.ListKeysOutput, error) {
		var out []types.KeyListEntry
		for _, id := range keys {
			out = append(out, types.KeyListEntry{KeyId: aws.String(id)})
		}
		return &kms.ListKeysOutput{Keys: out}, nil
	}
	api.createKey = func(in *kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
		id := "k" + string(rune('1'+len(keys)))
		keys = append(keys, id)
		tags[id] = map[string]string{}
		for _, tg := range in.Tags {
			tags[id][aws.ToString(tg.TagKey)] = aws.ToString(tg.TagValue)
		}
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	}
	j, err := journal.Open(context.Background(), t.TempDir(), journal.Scope{TokenSerial: "0001", Target: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	tok := &fakeToken{sha256: true}
	res, _ := (&Importer{KMS: api, Token: tok, Journal: j}).Run(context.Background(), Request{
		KeyLabel: "k", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true},
	})
	if len(keys) != 1 || res.KeyId != "k1" {
		t.Fatalf("%d keys created, run uses %q: want the one lost key found and used", len(keys), res.KeyId)
	}
	intents := j.Intents("CreateKey", nil)
	if len(intents) != 1 || tags["k1"][TagAttempt] != intents[0].Attempt || intents[0].Find["tag:"+TagAttempt] != intents[0].Attempt {
		t.Fatalf("journal intents %+v, key tags %v: the attempt tag must be in the intent and on the key", intents, tags["k1"])
	}
	if out, ok := j.Outcome(intents[0].Attempt); !ok || out.Result != journal.ResultUnknown {
		t.Fatalf("outcome %+v: want unknown", out)
	}
}

// A lost ImportKeyMaterial answer whose effect cannot be established is
// reported as unknown, never as nothing changed.
func TestLostImportIsReportedAsUnknown(t *testing.T) {
	r := &run{im: &Importer{KMS: &fakeKMS{}}, req: &Request{}, res: &Result{KeyId: "k1", CreatedKMSKey: true, HSM: kmsimport.HSMKey{KeyID: "ab"}}}
	lost := &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}
	_, err := r.do(context.Background(), change{op: "ImportKeyMaterial",
		call: func(context.Context, string) (map[string]string, error) { return nil, lost },
		settle: func(context.Context, string) (bool, map[string]string, error) {
			return false, nil, errors.New("KMS unreachable")
		},
	})
	msg := r.fail(StepImport, err).Error()
	for _, want := range []string{"may have reached KMS", "may hold the material: unknown", "To finish: fix the cause above, then run the same kmsbridge import command again"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "Nothing was changed") || strings.Contains(msg, "waits for key material") {
		t.Errorf("message claims what it cannot know:\n%s", msg)
	}
}

// When the ceremony record cannot be written, the flow stops after the
// step it could not record, before its next change.
func TestRunStopsBeforeTheNextChangeWhenTheRecordFails(t *testing.T) {
	api := &fakeKMS{listAliases: noAliases}
	halt := errors.New("the ceremony record could not be written: disk full")
	steps := 0
	im := &Importer{KMS: api, Token: &fakeToken{sha256: true}, Observe: func(kmsimport.StepEvent) { steps++ },
		Halt: func() error {
			if steps >= 2 {
				return halt
			}
			return nil
		}}
	_, err := im.Run(context.Background(), Request{KeyLabel: "k", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}})
	if !errors.Is(err, kmsimport.ErrJournal) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("got %v, want the record failure", err)
	}
	if tok := im.Token.(*fakeToken); len(tok.generated) != 0 || slices.Contains(api.calls, "CreateKey") {
		t.Fatalf("generated %v, KMS calls %v: a change after the record failed", tok.generated, api.calls)
	}
}

// A signal before a step stops the flow there, with an "interrupted"
// event for the record.
func TestRunInterruptedBetweenStepsSaysSo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var events []string
	im := &Importer{KMS: &fakeKMS{listAliases: noAliases}, Token: &fakeToken{sha256: true}, Observe: func(ev kmsimport.StepEvent) {
		events = append(events, ev.Step)
		if ev.Step == StepSelectKey {
			cancel()
		}
	}}
	_, err := im.Run(ctx, Request{KeyLabel: "k", Generate: true, WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: Expiry{NoExpiry: true}})
	if !errors.Is(err, kmsimport.ErrInterrupted) || events[len(events)-1] != kmsimport.StepInterrupted {
		t.Fatalf("got %v, events %v: want an interruption recorded", err, events)
	}
	if !strings.Contains(err.Error(), "Nothing was changed") {
		t.Errorf("interrupted before any change, but the message does not say so:\n%v", err)
	}
}
