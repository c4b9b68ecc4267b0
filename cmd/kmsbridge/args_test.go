package main

import (
	"slices"
	"testing"
)

func TestPositionalLast(t *testing.T) {
	app := newApp()
	tests := []struct{ in, want []string }{
		{[]string{"kmsbridge", "ceremony", "run", "c.yaml", "--dry-run"}, []string{"kmsbridge", "ceremony", "run", "--dry-run", "c.yaml"}},
		{[]string{"kmsbridge", "ceremony", "run", "c.yaml", "--operator", "Alice Smith", "-o", "json"}, []string{"kmsbridge", "ceremony", "run", "--operator", "Alice Smith", "-o", "json", "c.yaml"}},
		{[]string{"kmsbridge", "record", "verify", "r.jsonl", "--public-key", "a.pem", "--allow-unsigned"}, []string{"kmsbridge", "record", "verify", "--public-key", "a.pem", "--allow-unsigned", "r.jsonl"}},
		{[]string{"kmsbridge", "record", "verify", "--expect-count=3", "r.jsonl"}, []string{"kmsbridge", "record", "verify", "--expect-count=3", "r.jsonl"}},
		// commands without positional arguments are left alone
		{[]string{"kmsbridge", "import", "stray", "--generate"}, []string{"kmsbridge", "import", "stray", "--generate"}},
	}
	for _, tt := range tests {
		if got := positionalLast(app, tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("positionalLast(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	if exitCode(usageError{"x"}) != exitInvalidInput || exitCode(nil) != exitOK {
		t.Fatal("usage errors must exit 2, success 0")
	}
}

func TestParseTimeAcceptsRFC3339AndDates(t *testing.T) {
	for in, want := range map[string]string{"2027-06-30": "2027-06-30T00:00:00Z", "2027-06-30T12:00:00+02:00": "2027-06-30T10:00:00Z"} {
		got, err := parseTime("valid-to", in)
		if err != nil || got.UTC().Format("2006-01-02T15:04:05Z07:00") != want {
			t.Errorf("parseTime(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseTime("valid-to", "tomorrow"); err == nil {
		t.Error("parseTime accepted 'tomorrow'")
	}
}
