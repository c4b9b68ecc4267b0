package main

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/urfave/cli/v3"
)

// Flags may follow the positional argument of the commands that take one
// (ceremony run FILE --dry-run, as people type it); after "--" everything
// is an argument.
func TestFlagsAfterArguments(t *testing.T) {
	tests := []struct {
		args  []string
		flag  string
		value any
		rest  []string
	}{
		{[]string{"ceremony", "run", "c.yaml", "--dry-run"}, "dry-run", true, []string{"c.yaml"}},
		{[]string{"ceremony", "run", "c.yaml", "--operator", "Alice Smith", "-o", "json"}, "operator", "Alice Smith", []string{"c.yaml"}},
		{[]string{"ceremony", "run", "c.yaml", "--operator", "Alice Smith", "-o", "json"}, "output", "json", []string{"c.yaml"}},
		{[]string{"record", "verify", "r.jsonl", "--public-key", "a.pem", "--allow-unsigned"}, "public-key", "a.pem", []string{"r.jsonl"}},
		{[]string{"record", "verify", "--expect-count=3", "r.jsonl"}, "expect-count", 3, []string{"r.jsonl"}},
		{[]string{"record", "verify", "--", "--output"}, "output", "text", []string{"--output"}},
		// A repeatable flag takes one value per occurrence, trimmed, never
		// split at commas.
		{[]string{"ceremony", "run", "c.yaml", "--kms-rate", " CreateKey=1,Encrypt=2 ", "--kms-rate", "off"}, "kms-rate", []string{"CreateKey=1,Encrypt=2", "off"}, []string{"c.yaml"}},
	}
	for _, tt := range tests {
		app := newApp()
		cmd := app.Command(tt.args[0]).Command(tt.args[1])
		var got any
		var rest []string
		cmd.Action = func(_ context.Context, c *cli.Command) error {
			got, rest = c.Value(tt.flag), c.Args().Slice()
			return nil
		}
		if err := app.Run(context.Background(), append([]string{"kmsbridge"}, tt.args...)); err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if !reflect.DeepEqual(got, tt.value) || !slices.Equal(rest, tt.rest) {
			t.Errorf("%q: --%s = %v, arguments %q; want %v, %q", tt.args, tt.flag, got, rest, tt.value, tt.rest)
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
