package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"
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

// What approve's and renew's actions read is what --valid-for said, and
// their defaults when it is absent: through urfave/cli v3 as the commands
// run, not only Set. (v3's Generic returns a flag's Get(), so a Get that
// is not the Value makes every --valid-for read as 0: an approval that
// expires as it is given, a Key Vault key renewed to expire now.)
func TestValidForReachesTheAction(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		args []string
		want time.Duration
	}{
		{"approve", []string{"--valid-for", "2d"}, 48 * time.Hour},
		{"approve", nil, defaultApprovalValidity},
		{"renew", []string{"--valid-for", "90d"}, 90 * 24 * time.Hour},
		{"renew", []string{"--valid-for", "30"}, 30 * 24 * time.Hour},
		{"renew", nil, 365 * 24 * time.Hour},
	} {
		var flag cli.Flag
		app := newApp() // a flag's value is its command's: one app a run
		for _, cmd := range app.Commands {
			if cmd.Name != c.cmd {
				continue
			}
			for _, f := range cmd.Flags {
				if f.Names()[0] == flagValidFor {
					flag = f
				}
			}
		}
		if flag == nil {
			t.Fatalf("%s has no --%s", c.cmd, flagValidFor)
		}
		var got time.Duration
		probe := &cli.Command{Name: c.cmd, Flags: []cli.Flag{flag}, Writer: io.Discard, ErrWriter: io.Discard,
			Action: action(func(cc *cliContext) error { got = validForOf(cc, io.Discard); return nil })}
		if err := probe.Run(context.Background(), append([]string{c.cmd}, c.args...)); err != nil {
			t.Fatalf("%s %v: %v", c.cmd, c.args, err)
		}
		if got != c.want {
			t.Errorf("%s %v: the action reads %v, want %v", c.cmd, c.args, got, c.want)
		}
	}
}
