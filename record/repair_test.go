package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTornLastLineIsRefusedThenRepairedWithEvidence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	w, err := Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"one", "two"} {
		if _, err := w.Append(Entry{Command: "import", Step: step, Inputs: map[string]string{}, Outputs: map[string]string{}, Outcome: OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	torn := []byte(`{"Command":"import","Inputs":{},"Ou`)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(torn)
	f.Close()

	if _, err := Open(path, nil, nil); err == nil || !strings.Contains(err.Error(), "kmsbridge record repair "+path) {
		t.Fatalf("Open of a torn record: %v, want a refusal naming the repair command", err)
	}
	rep, err := Repair(path, time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(rep.TornFile)
	if err != nil || !bytes.Equal(kept, torn) {
		t.Fatalf("evidence %s holds %q (%v), want the torn bytes", rep.TornFile, kept, err)
	}
	sum := sha256.Sum256(torn)
	data, _ := os.ReadFile(path)
	vr, err := VerifyWith(bytes.NewReader(data), VerifyOptions{})
	if err != nil {
		t.Fatalf("the repaired record does not verify: %v", err)
	}
	last := vr.Entries[vr.Count-1].Parsed
	if vr.Count != 3 || last.Step != "repair-torn-line" || last.Outputs["TornBytesSha256"] != hex.EncodeToString(sum[:]) || last.Outputs["TornBytesFile"] != rep.TornFile {
		t.Fatalf("after repair: %d entries, last %+v", vr.Count, last)
	}
	if _, err := Repair(path, time.Now(), nil, nil); !errors.Is(err, ErrNothingToRepair) {
		t.Fatalf("second repair: %v, want ErrNothingToRepair", err)
	}
}

func TestRepairRefusesARecordBrokenElsewhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	os.WriteFile(path, []byte("not json\n{\"torn"), 0o600)
	if _, err := Repair(path, time.Now(), nil, nil); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("repair of a record broken elsewhere: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "not json\n{\"torn" {
		t.Fatalf("a refused repair changed the record: %q", b)
	}
}
