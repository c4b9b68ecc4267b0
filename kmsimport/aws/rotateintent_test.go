package aws

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// openJournal opens a journal whose clock is clock.
func openJournal(t *testing.T, clock *time.Time) *journal.Journal {
	t.Helper()
	j, err := journal.Open(context.Background(), t.TempDir(), journal.Scope{TokenSerial: "0001", Target: "eu-west-1@test"})
	if err != nil {
		t.Fatal(err)
	}
	j.Now = func() time.Time { return *clock }
	t.Cleanup(func() { j.Close() })
	return j
}

func rotateJournaled(l *ledger, tok *fakeToken, j *journal.Journal, clock *time.Time, req RotateRequest) (*RotateResult, error) {
	req.WrappingKeySpec = types.WrappingKeySpecRsa2048
	req.Expiry = Expiry{NoExpiry: true}
	req.Poll = time.Millisecond
	im := &Importer{KMS: l, Token: tok, Journal: j, Command: "rotate", Now: func() time.Time { return *clock }}
	return im.Rotate(context.Background(), []Regional{{Region: "eu-west-1", KMS: l}}, req)
}

func rotationOutcomes(j *journal.Journal) (open int, results []string) {
	for _, e := range j.Entries() {
		if e.Op != OpRotation {
			continue
		}
		switch e.Kind {
		case journal.KindIntent:
			open++
		case journal.KindOutcome:
			open--
			results = append(results, e.Result)
		}
	}
	return open, results
}

// A rotation stopped after its last KMS change (the rotating-to tag is
// gone, only the verification was missing) is finished by the re-run,
// which neither generates nor imports again; the same rotate once more
// reports the finished rotation; a day later it starts a new one and says
// when the last one ended.
func TestRotateReRunFinishesTheOpenRotationAndNeverRotatesAgain(t *testing.T) {
	clock := now
	l := newLedger()
	k := l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
	tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("pay", 0x0a)}}
	j := openJournal(t, &clock)
	decrypt := l.decrypt
	l.decrypt = func(*kms.DecryptInput) (*kms.DecryptOutput, error) {
		return nil, errors.New("stopped before verifying")
	}
	if _, err := rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1"}); err == nil {
		t.Fatal("the first run did not stop at its verification")
	}
	l.decrypt = decrypt
	if _, ok := k.tags[TagRotatingTo]; ok || len(k.materials) != 2 {
		t.Fatalf("the first run did not get past its last KMS change: tags %v, %d materials", k.tags, len(k.materials))
	}
	if open, _ := rotationOutcomes(j); open != 1 {
		t.Fatalf("%d open rotations in the journal after the stop, want 1", open)
	}
	imports := len(l.imports)

	clock = clock.Add(time.Hour)
	res, err := rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.StartedAt == nil || !res.StartedAt.Equal(now) || res.AlreadyDone {
		t.Errorf("re-run: resumed %v started %v already %v, want it to finish the rotation started at %v", res.Resumed, res.StartedAt, res.AlreadyDone, now)
	}
	if !slices.Equal(tok.generated, []string{"pay-r2"}) || len(l.imports) != imports || len(k.materials) != 2 {
		t.Errorf("the re-run rotated again: generated %v, %d imports (had %d), %d materials", tok.generated, len(l.imports), imports, len(k.materials))
	}
	var b strings.Builder
	res.WriteSummary(&b)
	if !strings.Contains(b.String(), "Finished the rotation started at "+now.Format(time.RFC3339)) {
		t.Errorf("summary:\n%s", b.String())
	}
	if open, results := rotationOutcomes(j); open != 0 || !slices.Equal(results, []string{journal.ResultOK}) {
		t.Errorf("journal: %d open rotations, outcomes %v; want one, closed ok", open, results)
	}

	clock = clock.Add(time.Hour)
	again, err := rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1"})
	if err != nil || !again.AlreadyDone || again.FinishedAt == nil || len(tok.generated) != 1 {
		t.Fatalf("the same rotate after the finished one: %+v %v, generated %v; want it reported, nothing changed", again, err, tok.generated)
	}
	b.Reset()
	again.WriteSummary(&b)
	if !strings.Contains(b.String(), "--new-rotation") {
		t.Errorf("summary does not name --new-rotation:\n%s", b.String())
	}

	// --new-rotation within the window, and a plain rotate after it,
	// each start a new rotation and say when the last one finished.
	res, err = rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1", NewRotation: true})
	if err != nil || res.AlreadyDone || res.PreviousRotation == nil || !slices.Equal(tok.generated, []string{"pay-r2", "pay-r3"}) {
		t.Fatalf("--new-rotation: %+v %v, generated %v", res, err, tok.generated)
	}
	clock = clock.Add(RotationRepeatWindow + time.Minute)
	res, err = rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1"})
	if err != nil || res.AlreadyDone || res.PreviousRotation == nil || len(tok.generated) != 3 {
		t.Fatalf("a day later: %+v %v, generated %v", res, err, tok.generated)
	}
}

// The journal is input like any other: an open rotation that KMS or the
// token contradicts is refused, and --new-rotation closes it as abandoned
// and starts a new one.
func TestRotateRefusesAnOpenRotationKMSDoesNotConfirm(t *testing.T) {
	base := map[string]string{riKMSKeyID: "k1", riRegion: "eu-west-1", riTokenSerial: "0001", riMode: "on-demand",
		riFromHSMKeyID: "0a", riToHSMKeyLabel: "pay-r2"}
	for name, edit := range map[string]map[string]string{
		"new HSM key not in the token":   {riToHSMKeyID: "0f"},
		"new HSM key is the old one":     {riToHSMKeyID: "0a"},
		"new HSM key under another name": {riToHSMKeyID: "0b"},
		"old HSM key backs nothing":      {riFromHSMKeyID: "0c"},
		"wrong mode":                     {riMode: "manual"},
	} {
		t.Run(name, func(t *testing.T) {
			clock := now
			l := newLedger()
			l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
			tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("pay", 0x0a), aesKey("other", 0x0b)}}
			j := openJournal(t, &clock)
			target := map[string]string{}
			for k, v := range base {
				target[k] = v
			}
			for k, v := range edit {
				target[k] = v
			}
			if _, err := j.Intend(journal.Intent{Command: "rotate", Op: OpRotation, Target: target}); err != nil {
				t.Fatal(err)
			}
			_, err := rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1"})
			if !errors.Is(err, kmsimport.ErrInvalidInput) || !strings.Contains(err.Error(), "do not confirm") || !strings.Contains(err.Error(), "--new-rotation") {
				t.Fatalf("err = %v, want a refusal naming --new-rotation", err)
			}
			if len(tok.generated) != 0 || len(l.imports) != 0 {
				t.Fatalf("something changed: generated %v, %d imports", tok.generated, len(l.imports))
			}
			res, err := rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1", NewRotation: true})
			if err != nil || res.Resumed || !slices.Equal(tok.generated, []string{"pay-r2"}) {
				t.Fatalf("--new-rotation: %+v %v, generated %v", res, err, tok.generated)
			}
			if open, results := rotationOutcomes(j); open != 0 || !slices.Equal(results, []string{journal.ResultFailed, journal.ResultOK}) {
				t.Errorf("journal: %d open, outcomes %v; want the forged one abandoned and the new one ok", open, results)
			}
		})
	}
}

// Every change a rotation makes (on demand or manual) is journaled after
// the rotation's own intent, and the rotation is closed only after its
// last change and verification: a change made before the intent is one a
// re-run could not take up. A new step that changes something before
// open-rotation fails this test.
func TestEveryRotationChangeIsInsideItsIntent(t *testing.T) {
	check := func(t *testing.T, j *journal.Journal, wantClosed bool) {
		t.Helper()
		var ops []string
		for _, e := range j.Entries() {
			if e.Kind == journal.KindIntent || e.Kind == journal.KindOutcome && e.Op == OpRotation {
				ops = append(ops, e.Kind+":"+e.Op)
			}
		}
		if len(ops) < 2 || ops[0] != "intent:"+OpRotation {
			t.Fatalf("journal %v: the rotation's intent is not written before its first change", ops)
		}
		last := ops[len(ops)-1]
		if wantClosed && last != "outcome:"+OpRotation {
			t.Errorf("journal %v: the rotation is not closed after its last change", ops)
		}
		if !wantClosed && slices.Contains(ops, "outcome:"+OpRotation) {
			t.Errorf("journal %v: a rotation that failed its verification was closed", ops)
		}
	}
	t.Run("on-demand", func(t *testing.T) {
		clock := now
		l := newLedger()
		l.addKey("k1", types.KeySpecSymmetricDefault, types.KeyStateEnabled, "0a", nil)
		tok := &fakeToken{sha256: true, keys: []*hsm.Key{aesKey("pay", 0x0a)}}
		j := openJournal(t, &clock)
		if _, err := rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "k1"}); err != nil {
			t.Fatal(err)
		}
		check(t, j, true)
	})
	t.Run("manual", func(t *testing.T) {
		clock := now
		l := newLedger()
		l.addKey("k1", types.KeySpecHmac256, types.KeyStateEnabled, "0a", nil)
		l.aliases["alias/mac"] = "k1"
		l.createKey = func(in *kms.CreateKeyInput) (*kms.CreateKeyOutput, error) {
			k := l.addKey("k2", in.KeySpec, types.KeyStatePendingImport, "", nil)
			for _, tg := range in.Tags {
				k.tags[*tg.TagKey] = *tg.TagValue
			}
			md := k.md
			return &kms.CreateKeyOutput{KeyMetadata: &md}, nil
		}
		hk := &hsm.Key{Label: "mac", ID: []byte{0x0a}, Class: 4, KeyType: 0x10, ValueLen: 32, Extractable: true, Sensitive: true}
		tok := &fakeToken{sha256: true, keys: []*hsm.Key{hk}}
		j := openJournal(t, &clock)
		// The fake token cannot HMAC: the new key's verification fails
		// after its changes, and the rotation must stay open.
		if _, err := rotateJournaled(l, tok, j, &clock, RotateRequest{KMSKeyID: "alias/mac"}); err == nil {
			t.Fatal("the manual rotation verified with a token that cannot HMAC")
		}
		check(t, j, false)
	})
}
