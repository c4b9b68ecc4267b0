package ceremony

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
	"github.com/kmsbridge/kmsbridge/record"
)

func TestGeneratedBeforeReadsTheRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ceremony.jsonl")
	w, err := record.Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []record.Entry{
		{Step: awskms.StepGenerate, Outcome: record.OutcomeOK, Outputs: map[string]string{"HsmKeyLabel": "a", "HsmKeyId": "01"}},
		{Step: awskms.StepGenerate, Outcome: record.OutcomeError, Error: "CKR_DEVICE_ERROR", Outputs: map[string]string{"HsmKeyLabel": "failed", "HsmKeyId": "09"}},
		{Step: "journal-intent", Outcome: record.OutcomeOK, Outputs: map[string]string{"Op": "C_GenerateKeyPair", "TargetKeyLabel": "b"}},
		// Killed after the intent: its CKA_ID, chosen before the call, is
		// the proof (an intent without one, like b's, proves nothing).
		{Step: "journal-intent", Outcome: record.OutcomeOK, Outputs: map[string]string{"Op": "C_GenerateKey", "TargetKeyLabel": "d", "TargetHsmKeyId": "0D"}},
		{Step: "journal-intent", Outcome: record.OutcomeOK, Outputs: map[string]string{"Op": "C_WrapKey", "TargetKeyLabel": "wrapped-only"}},
		{Step: "journal-intent", Outcome: record.OutcomeOK, Outputs: map[string]string{"Op": "C_GenerateKey", "TargetKeyLabel": "c"}},
		{Step: "journal-outcome", Outcome: record.OutcomeOK, Outputs: map[string]string{"Result": "ok", "HsmKeyLabel": "c", "HsmKeyId": "03"}},
	} {
		e.Command = "ceremony run"
		if _, err := w.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := GeneratedBefore(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "01", "b": "", "c": "03", "d": "0d"}
	if !maps.Equal(got, want) {
		t.Errorf("GeneratedBefore = %v, want %v", got, want)
	}
}

func TestGeneratedBeforeWithoutRecordIsEmpty(t *testing.T) {
	for _, path := range []string{filepath.Join(t.TempDir(), "none.jsonl"), ""} {
		got, err := GeneratedBefore(path)
		if err != nil || len(got) != 0 {
			t.Errorf("GeneratedBefore(%q) = %v, %v; want an empty map", path, got, err)
		}
	}
}

func TestGeneratedBeforeRefusesARecordThatDoesNotVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ceremony.jsonl")
	if err := os.WriteFile(path, []byte("{\"Seq\":1,\"Step\":\"forged\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := GeneratedBefore(path)
	if !errors.Is(err, kmsimport.ErrInvalidInput) {
		t.Errorf("GeneratedBefore of a broken record = %v, want ErrInvalidInput", err)
	}
}

// TestStepGenerateIsEveryClouds: the record evidence finds the keys this
// ceremony generated whichever cloud's import generated them.
func TestStepGenerateIsEveryClouds(t *testing.T) {
	for cloud, step := range map[string]string{"aws": awskms.StepGenerate, "gcp": gcp.StepGenerate, "azure": azure.StepGenerate} {
		if step != stepGenerate {
			t.Errorf("%s's import records the generation as %q, the ceremony looks for %q", cloud, step, stepGenerate)
		}
	}
}
