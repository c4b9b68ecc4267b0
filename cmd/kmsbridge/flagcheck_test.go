package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
)

// TestEveryNumericFlagHasARange walks every command: each whole-number and
// duration flag has a range in flagcheck.go and its default is inside it,
// so a flag added later cannot take 0 or a negative value unchecked.
func TestEveryNumericFlagHasARange(t *testing.T) {
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, cmd := range cmds {
			p := strings.TrimSpace(path + " " + cmd.Name)
			walk(p, cmd.Commands)
			for _, f := range cmd.Flags {
				name := f.Names()[0]
				switch f := f.(type) {
				case *cli.IntFlag:
					r, ok := intRanges[name]
					if !ok {
						t.Errorf("%s --%s: no range in intRanges", p, name)
					} else if v := int64(f.Value); f.Value != 0 && (v < r.min || v > r.max) {
						t.Errorf("%s --%s: default %d outside %d..%d", p, name, v, r.min, r.max)
					}
				case *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
					if _, ok := intRanges[name]; !ok {
						t.Errorf("%s --%s: no range in intRanges", p, name)
					}
				case *cli.DurationFlag:
					r, ok := durationRanges[name]
					if !ok {
						t.Errorf("%s --%s: no range in durationRanges", p, name)
					} else if f.Value < r.min || f.Value > r.max {
						t.Errorf("%s --%s: default %v outside %v..%v", p, name, f.Value, r.min, r.max)
					}
				case *cli.Float64Flag, *cli.IntSliceFlag, *cli.Int64SliceFlag, *cli.Float64SliceFlag, *cli.TimestampFlag:
					t.Errorf("%s --%s: a %T has no check in checkFlags: add one", p, name, f)
				}
			}
		}
	}
	walk("", newApp().Commands)
}

// TestFlagValuesAreCheckedFirst: bad values are refused (exit 2, naming
// the flag and what to give) by checkFlags, before the command opens a
// token, a record or a KMS client (none of those exist here).
func TestFlagValuesAreCheckedFirst(t *testing.T) {
	// A default state directory others may write is refused before the
	// first change too.
	t.Run("default state dir others may write", func(t *testing.T) {
		state := t.TempDir()
		if err := os.Mkdir(filepath.Join(state, "kmsbridge"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(state, "kmsbridge"), 0o777); err != nil {
			t.Fatal(err)
		}
		t.Setenv("XDG_STATE_HOME", state)
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := app.Run(context.Background(), []string{"kmsbridge", "import", "--key-label", "k"})
		if exitCode(err) != exitInvalidInput || !strings.Contains(err.Error(), "chmod 700") {
			t.Fatalf("%v: want the default state directory refused", err)
		}
	})
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"import", "--kms-timeout", "0s"}, []string{"--kms-timeout 0s", "such as 30s"}},
		{[]string{"import", "--kms-timeout", "-5s"}, []string{"--kms-timeout -5s"}},
		{[]string{"ceremony", "run", "--kms-timeout", "0s", "x.yaml"}, []string{"--kms-timeout 0s"}},
		{[]string{"rotate", "--wait", "-1s"}, []string{"--wait -1s", "such as 10m"}},
		{[]string{"rotate", "--wait", "0s"}, []string{"--wait 0s"}},
		{[]string{"renew", "--max-keys", "0"}, []string{"--max-keys 0", "from 1 to"}},
		{[]string{"status", "--max-keys", "-1"}, []string{"--max-keys -1"}},
		{[]string{"renew", "--within", "-1"}, []string{"--within -1", "days"}},
		{[]string{"renew", "--valid-for", "0"}, []string{"--valid-for 0"}},
		{[]string{"status", "--warn-days", "400"}, []string{"--warn-days 400"}},
		{[]string{"ceremony", "run", "--parallel", "0", "x.yaml"}, []string{"--parallel 0", "from 1 to 64"}},
		{[]string{"import", "--from", "x.csv", "--parallel", "-3"}, []string{"--parallel -3"}},
		{[]string{"import", "--from", "x.csv", "--parallel", "100000"}, []string{"--parallel 100000"}},
		{[]string{"record", "verify", "--expect-count", "0", "r.jsonl"}, []string{"--expect-count 0"}},
		{[]string{"import", "--kms-rate", "GetParametersForImprot=5"}, []string{"sends no KMS operation", "GetParametersForImport"}},
		{[]string{"ceremony", "run", "--kms-rate", "createkey=5", "x.yaml"}, []string{"case-sensitive: write CreateKey"}},
		{[]string{"import", "--region", "bogus"}, []string{`--region "bogus" is not an AWS Region`}},
		{[]string{"import", "--region", "US-EAST-1"}, []string{"lower case: write us-east-1"}},
		{[]string{"import", "--multi-region", "--replica-region", "bogus"}, []string{`--replica-region "bogus" is not an AWS Region`}},
		{[]string{"renew", "--replica-region", "eu-wset-1"}, []string{"did you mean eu-west-1"}},
		{[]string{"rotate", "--replica-region", "Eu-West-1"}, []string{"write eu-west-1"}},
		{[]string{"status", "--region", "mars-1"}, []string{"is not an AWS Region"}},
		{[]string{"delete-material", "--kms-key-id", "k", "--region", "eu-west-9"}, []string{"did you mean eu-west-1"}},
		{[]string{"prepare", "--out", "b.json", "--kms-timeout", "0s"}, []string{"--kms-timeout 0s"}},
		{[]string{"renew", "--wrapping-key-spec", "RSA_1024"}, []string{"RSA_1024"}},
		{[]string{"rotate", "--wrapping-key-spec", "RSA_1024"}, []string{"RSA_1024"}},
		{[]string{"import", "--state-dir", "/tmp"}, []string{"shared with other users"}},
		{[]string{"delete-material", "--kms-key-id", "k", "--state-dir", "/etc/hostname"}, []string{"not a directory"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", t.TempDir())
			app := newApp()
			app.Writer, app.ErrWriter = io.Discard, io.Discard
			args := append([]string{"kmsbridge"}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := cliUsage(app.Run(ctx, args), args)
			if code := exitCode(err); code != exitInvalidInput {
				t.Fatalf("exit %d, want 2 (%v)", code, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
