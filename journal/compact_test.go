package journal

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeJournal writes entries as the journal file of scope in dir.
func writeJournal(t *testing.T, dir string, entries []Entry) string {
	t.Helper()
	var b bytes.Buffer
	for _, e := range entries {
		line, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	path := filepath.Join(dir, scope.FileName())
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func smallCompaction(t *testing.T) {
	above, ret := compactAbove, retention
	compactAbove, retention = 10, 30*24*time.Hour
	t.Cleanup(func() { compactAbove, retention = above, ret })
}

// pair is an intent and, unless result is "", its outcome, at time at.
func pair(attempt, op string, at time.Time, result string) []Entry {
	es := []Entry{{Kind: KindIntent, Attempt: attempt, Time: at, Command: "import", Op: op, Target: map[string]string{"KeyLabel": attempt}}}
	if result != "" {
		es = append(es, Entry{Kind: KindOutcome, Attempt: attempt, Time: at.Add(time.Second), Command: "import", Op: op, Result: result})
	}
	return es
}

// TestCompactionMovesOnlyOldFinishedAttempts: a journal above the size
// limit moves the attempts that finished before the retention to the
// archive, and keeps every unfinished attempt (no outcome, or unknown),
// however old, and everything recent.
func TestCompactionMovesOnlyOldFinishedAttempts(t *testing.T) {
	smallCompaction(t)
	dir := t.TempDir()
	old, recent := time.Now().Add(-100*24*time.Hour), time.Now().Add(-time.Hour)
	var es []Entry
	for _, a := range []string{"old-ok-1", "old-ok-2", "old-failed"} {
		r := ResultOK
		if a == "old-failed" {
			r = ResultFailed
		}
		es = append(es, pair(a, "CreateKey", old, r)...)
	}
	es = append(es, Entry{Kind: KindNote, Attempt: "old-note", Time: old, Op: "resume"})
	es = append(es, pair("old-unfinished", "C_GenerateKey", old, "")...)
	es = append(es, pair("old-unknown", "ImportKeyMaterial", old, ResultUnknown)...)
	// Settled long after it began: it finished recently, so it stays.
	es = append(es, pair("settled-lately", "ImportKeyMaterial", old, ResultUnknown)...)
	es = append(es, Entry{Kind: KindOutcome, Attempt: "settled-lately", Time: recent, Op: "ImportKeyMaterial", Result: ResultOK})
	for _, a := range []string{"new-1", "new-2"} {
		es = append(es, pair(a, "CreateKey", recent, ResultOK)...)
	}
	path := writeJournal(t, dir, es)

	j := open(t, dir)
	var live []string
	for _, e := range j.Entries() {
		live = append(live, e.Attempt+"/"+e.Kind)
	}
	got := strings.Join(live, " ")
	for _, gone := range []string{"old-ok-1", "old-ok-2", "old-failed", "old-note"} {
		if strings.Contains(got, gone) {
			t.Errorf("%s is still in the live journal: %s", gone, got)
		}
	}
	for _, kept := range []string{"old-unfinished/intent", "old-unknown/intent", "old-unknown/outcome", "settled-lately/outcome", "new-1/outcome", "new-2/intent"} {
		if !strings.Contains(got, kept) {
			t.Errorf("%s is not in the live journal: %s", kept, got)
		}
	}
	if u := attemptsOf(j.Unsettled("C_GenerateKey", nil)); len(u) != 1 || u[0] != "old-unfinished" {
		t.Errorf("unsettled generations after compaction = %v, want old-unfinished", u)
	}
	last := j.Entries()[len(j.Entries())-1]
	if last.Kind != KindNote || last.Op != "compacted" || last.Facts["Entries"] != "7" || last.Facts["MovedTo"] != path+".archive" {
		t.Errorf("last entry = %+v, want a compacted note of 7 entries moved to the archive", last)
	}
	archive, err := os.ReadFile(path + ".archive")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(archive, []byte("\n")); n != 7 || !bytes.Contains(archive, []byte("old-ok-2")) {
		t.Errorf("archive has %d entries, want the 7 moved:\n%s", n, archive)
	}
	if fi, err := os.Stat(path + ".archive"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := os.Stat(path + ".compacting"); !os.IsNotExist(err) {
		t.Errorf("%s.compacting left behind (%v)", path, err)
	}

	// What the live journal holds now reads back the same after a reopen.
	j.Close()
	j2 := open(t, dir)
	if n := len(j2.Entries()); n != len(live) {
		t.Errorf("after a reopen: %d entries, want %d", n, len(live))
	}
}

// TestSmallJournalIsNotCompacted: below the size limit nothing moves,
// however old.
func TestSmallJournalIsNotCompacted(t *testing.T) {
	smallCompaction(t)
	dir := t.TempDir()
	path := writeJournal(t, dir, pair("old", "CreateKey", time.Now().Add(-400*24*time.Hour), ResultOK))
	j := open(t, dir)
	if n := len(j.Entries()); n != 2 {
		t.Errorf("%d entries, want the 2 written", n)
	}
	if _, err := os.Stat(path + ".archive"); !os.IsNotExist(err) {
		t.Errorf("an archive was made (%v)", err)
	}
}

// TestInterruptedCompactionIsFinished: a crash after the new journal was
// made whole (<file>.compacting) but before or while the live journal was
// rewritten is finished by the next Open, whatever the live file holds.
func TestInterruptedCompactionIsFinished(t *testing.T) {
	for name, live := range map[string][]byte{
		"old journal":  []byte(`{"kind":"intent","attempt":"gone","op":"CreateKey"}` + "\n"),
		"half written": []byte(`{"kind":"intent","attem`),
		"truncated":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, scope.FileName())
			if err := os.WriteFile(path, live, 0o600); err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			for _, e := range pair("kept", "C_GenerateKey", time.Now(), "") {
				line, _ := json.Marshal(e)
				want.Write(append(line, '\n'))
			}
			if err := os.WriteFile(path+".compacting", want.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			j := open(t, dir)
			if got := attemptsOf(j.Entries()); len(got) != 1 || got[0] != "kept" {
				t.Errorf("entries after the interrupted compaction = %v, want the compacted journal's (kept)", got)
			}
			if j.Torn != "" {
				t.Errorf("a torn line was reported (%s): the compacted journal replaced the half-written one", j.Torn)
			}
			if _, err := os.Stat(path + ".compacting"); !os.IsNotExist(err) {
				t.Errorf(".compacting left behind (%v)", err)
			}
		})
	}
}
