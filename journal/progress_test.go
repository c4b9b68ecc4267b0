package journal

import (
	"testing"
	"time"
)

// A long intent (a whole rotation) records what it learns as progress
// under its own attempt; after a reopen the intent is still open, its
// progress reads back merged, and a reopened Pending closes it.
func TestProgressOfAnOpenIntentSurvivesReopenAndCloses(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	p, err := j.Intend(Intent{Command: "rotate", Op: "Rotation", Target: map[string]string{"KmsKeyId": "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Time().IsZero() || time.Since(p.Time()) > time.Minute {
		t.Errorf("intent time %v, want now", p.Time())
	}
	if err := p.Progress(map[string]string{"ToHsmKeyId": "0b"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Progress(map[string]string{"NewKmsKeyId": "k2", "ToHsmKeyId": "0c"}); err != nil {
		t.Fatal(err)
	}
	j.Close()

	j2 := open(t, dir)
	open := j2.Unsettled("Rotation", nil)
	if len(open) != 1 || open[0].Target["KmsKeyId"] != "k1" || open[0].Time.IsZero() {
		t.Fatalf("open rotations after reopen = %+v, want the one intent", open)
	}
	got := j2.Progress(open[0].Attempt)
	if got["ToHsmKeyId"] != "0c" || got["NewKmsKeyId"] != "k2" {
		t.Errorf("progress = %v, want the later ToHsmKeyId and the NewKmsKeyId", got)
	}
	if len(j2.Progress("no-such-attempt")) != 0 {
		t.Error("progress of an unknown attempt is not empty")
	}
	if err := j2.Reopen(open[0]).Done(ResultOK, map[string]string{"Finished": "yes"}, nil); err != nil {
		t.Fatal(err)
	}
	if u := j2.Unsettled("Rotation", nil); len(u) != 0 {
		t.Errorf("still open after Done: %+v", u)
	}
	if o, ok := j2.Outcome(open[0].Attempt); !ok || o.Result != ResultOK {
		t.Errorf("outcome %+v %v", o, ok)
	}
}

// Progress entries of an open intent are never compacted away, however
// old; those of an old finished one are.
func TestCompactionKeepsTheProgressOfOpenIntents(t *testing.T) {
	smallCompaction(t)
	dir := t.TempDir()
	old := time.Now().Add(-100 * 24 * time.Hour)
	es := []Entry{
		{Kind: KindIntent, Attempt: "open", Time: old, Op: "Rotation"},
		{Kind: KindProgress, Attempt: "open", Time: old, Op: "Rotation", Facts: map[string]string{"ToHsmKeyId": "0b"}},
		{Kind: KindIntent, Attempt: "done", Time: old, Op: "Rotation"},
		{Kind: KindProgress, Attempt: "done", Time: old, Op: "Rotation", Facts: map[string]string{"ToHsmKeyId": "0c"}},
		{Kind: KindOutcome, Attempt: "done", Time: old, Op: "Rotation", Result: ResultOK},
	}
	for i := 0; i < 10; i++ {
		es = append(es, pair(NewAttemptID(), "CreateKey", time.Now(), ResultOK)...)
	}
	writeJournal(t, dir, es)
	j := open(t, dir)
	if got := j.Progress("open"); got["ToHsmKeyId"] != "0b" {
		t.Errorf("progress of the open rotation after compaction = %v", got)
	}
	if got := j.Progress("done"); len(got) != 0 {
		t.Errorf("progress of the old finished rotation was kept: %v", got)
	}
}
