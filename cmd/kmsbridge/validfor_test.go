package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseValidFor(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		in       string
		bareDays bool
		want     time.Duration
		bare     bool
		err      string
	}{
		{"24h", false, day, false, ""},
		{"90m", false, 90 * time.Minute, false, ""},
		{"7d", false, 7 * day, false, ""},
		{"1d12h", false, day + 12*time.Hour, false, ""},
		{"365d", true, 365 * day, false, ""},
		{"365", true, 365 * day, true, ""},
		{"5", false, 0, false, "no unit"},
		{"d", false, 0, false, "not a duration"},
		{"1w", false, 0, false, "not a duration"},
		{"1d-5h", false, 0, false, "not a duration"},
		{"-3", true, 0, true, "out of range"},
		{"99999999999d", false, 0, false, "too many days"},
	} {
		got, bare, err := parseValidFor(c.in, c.bareDays)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: err %v, want %q", c.in, err, c.err)
		case c.err == "" && (err != nil || got != c.want || bare != c.bare):
			t.Errorf("%q: %v %v %v, want %v %v", c.in, got, bare, err, c.want, c.bare)
		}
	}
}

// Both commands' --valid-for take durations with units, days included;
// renew's bare number still means days, with a note; values out of each
// command's range are refused while the flags are parsed (exit 2).
func TestValidForIsOneFlagWithOneMeaning(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"renew", "--valid-for", "0"}, "--valid-for 0"},
		{[]string{"renew", "--valid-for", "4000d"}, "3650 for Key Vault"},
		{[]string{"renew", "--valid-for", "0"}, "1 to 365 days"},
		{[]string{"renew", "--valid-for", "soon"}, "not a duration"},
		{[]string{"approve", "--valid-for", "8d"}, "give 1m to 7d (168h)"},
		{[]string{"approve", "--valid-for", "24"}, "no unit: write it with one, such as 24h or 24d"},
		{[]string{"approve", "--valid-for", "0s"}, "--valid-for 0s"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", t.TempDir())
			app := newApp()
			app.Writer, app.ErrWriter = io.Discard, io.Discard
			args := append([]string{"kmsbridge"}, c.args...)
			err := cliUsage(app.Run(context.Background(), args), args)
			if exitCode(err) != exitInvalidInput || !strings.Contains(err.Error(), c.want) {
				t.Errorf("exit %d %v, want 2 and %q", exitCode(err), err, c.want)
			}
		})
	}
	// Accepted forms: the value each command's action reads.
	for _, c := range []struct {
		cmd, in string
		want    time.Duration
		note    bool
	}{
		{"approve", "2d", 48 * time.Hour, false},
		{"approve", "90m", 90 * time.Minute, false},
		{"renew", "90d", 90 * 24 * time.Hour, false},
		{"renew", "365", 365 * 24 * time.Hour, true},
	} {
		v := newValidFor(24*time.Hour, time.Minute, 3650*24*time.Hour, c.cmd == "renew")
		if err := v.Set(c.in); err != nil || v.d != c.want || v.bare != c.note {
			t.Errorf("%s %q: %v %v %v", c.cmd, c.in, v.d, v.bare, err)
		}
	}
}

// The deprecation note names the form to write instead; a value with a
// unit has none.
func TestValidForBareDaysNote(t *testing.T) {
	v := newValidFor(365*24*time.Hour, time.Hour, 3650*24*time.Hour, true)
	if err := v.Set("30"); err != nil {
		t.Fatal(err)
	}
	if n := v.note(); !strings.Contains(n, "deprecated: write --valid-for 30d") {
		t.Errorf("note %q", n)
	}
	if err := v.Set("30d"); err != nil || v.note() != "" {
		t.Errorf("30d: %v, note %q", err, v.note())
	}
}

// The value an action reads through the CLI library, given or defaulted:
// urfave/cli v3 returns what the flag value's Get returns, so a Get that
// returned anything but the value itself left actions with none.
func TestValidForReachesTheAction(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{[]string{"renew"}, 365 * 24 * time.Hour},
		{[]string{"renew", "--valid-for", "30d"}, 30 * 24 * time.Hour},
		{[]string{"renew", "--valid-for", "30"}, 30 * 24 * time.Hour},
		{[]string{"approve", "--bundle", "b.json"}, defaultApprovalValidity},
		{[]string{"approve", "--bundle", "b.json", "--valid-for", "90m"}, 90 * time.Minute},
	} {
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		cmd := app.Command(c.args[0])
		var got time.Duration
		cmd.Action = action(func(cc *cliContext) error {
			got = validForOf(cc, io.Discard)
			return nil
		})
		if err := app.Run(context.Background(), append([]string{"kmsbridge"}, c.args...)); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got != c.want {
			t.Errorf("%v: the action read %v, want %v", c.args, got, c.want)
		}
	}
}
