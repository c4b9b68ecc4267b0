package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
)

// logWith runs a command that logs one line at info and one at warn with
// the output flags args, and returns what reached stderr.
func logWith(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stderr bytes.Buffer
	app := &cli.Command{Name: "kmsbridge", Flags: outputFlags(), ErrWriter: &stderr, Action: action(func(c *cliContext) error {
		log, err := newLogger(c)
		if err != nil {
			return err
		}
		log.Info("generated key", "label", "pay")
		log.Warn("ignoring AWS_ENDPOINT_URL_KMS")
		return nil
	})}
	err := app.Run(context.Background(), append([]string{"kmsbridge"}, args...))
	return stderr.String(), err
}

func TestLogTimesAreRFC3339InUTC(t *testing.T) {
	out, err := logWith(t)
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(out, "\n", 2)[0]
	ts, ok := strings.CutPrefix(strings.Fields(first)[0], "time=")
	if !ok {
		t.Fatalf("no time on %q", first)
	}
	if _, err := time.Parse(time.RFC3339, ts); err != nil || !strings.HasSuffix(ts, "Z") {
		t.Errorf("log time %q is not RFC 3339 in UTC: %v", ts, err)
	}
}

func TestLogFormatJSONIsOneObjectPerLine(t *testing.T) {
	out, err := logWith(t, "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", l, err)
		}
		if _, err := time.Parse(time.RFC3339, m["time"].(string)); err != nil || m["msg"] == "" {
			t.Errorf("line %v lacks an RFC 3339 time or a message", m)
		}
	}
}

func TestQuietKeepsWarningsOnly(t *testing.T) {
	out, err := logWith(t, "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "generated key") || !strings.Contains(out, "ignoring AWS_ENDPOINT_URL_KMS") {
		t.Errorf("--quiet logged:\n%s", out)
	}
	if _, err := logWith(t, "--quiet", "--log-level", "debug"); err == nil || exitCode(err) != exitInvalidInput {
		t.Errorf("--quiet with --log-level: %v, want a usage error", err)
	}
	if _, err := logWith(t, "--log-format", "xml"); err == nil || !strings.Contains(err.Error(), "choose text or json") {
		t.Errorf("--log-format xml: %v", err)
	}
}
