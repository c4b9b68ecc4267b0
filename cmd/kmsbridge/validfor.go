package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
)

// --valid-for is one flag with one meaning wherever it appears (approve,
// renew): how long from now, as a duration with its unit. Go's units
// (h, m, s) and days (d) are accepted, alone or together: 24h, 90m, 7d,
// 1d12h. renew once took a bare number of days (--valid-for 365); it
// still does, with a note that the unit should be written (365d). approve
// takes no bare number: its value was always a duration.

// validFor is the value of a --valid-for flag: a duration within the
// command's range. Set checks the range, so a bad value is refused while
// the flags are parsed, before the command does anything.
type validFor struct {
	d        time.Duration
	min, max time.Duration
	// bareDays: a number without unit means days (renew's old form).
	bareDays bool
	// bare is set when the value given was a bare number of days.
	bare bool
	// raw is the value as given ("" for the default).
	raw string
}

var _ cli.Value = (*validFor)(nil)

// Get is the flag.Getter half of cli.Value. It returns the value itself:
// urfave/cli v3's Command.Generic hands back what Get returns, and
// validForOf needs the whole value (range, bare-days note), not only the
// duration.
func (v *validFor) Get() any { return v }

// newValidFor is a --valid-for value defaulting to def, accepting min to
// max.
func newValidFor(def, min, max time.Duration, bareDays bool) *validFor {
	return &validFor{d: def, min: min, max: max, bareDays: bareDays}
}

var daysPrefix = lazyre.New(`^([0-9]+)d(.*)$`)

// parseValidFor reads a duration with units, days (d) included: 7d,
// 1d12h, 24h, 90m. With bareDays, a whole number alone means days.
func parseValidFor(s string, bareDays bool) (d time.Duration, bare bool, err error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if !bareDays {
			return 0, false, fmt.Errorf("%q has no unit: write it with one, such as %dh or %dd", s, n, n)
		}
		if n < 0 || n > 100_000 {
			return 0, true, fmt.Errorf("%q days is out of range", s)
		}
		return time.Duration(n) * 24 * time.Hour, true, nil
	}
	var days time.Duration
	rest := s
	if m := daysPrefix.FindStringSubmatch(s); m != nil {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > 100_000 {
			return 0, false, fmt.Errorf("%q: too many days", s)
		}
		days, rest = time.Duration(n)*24*time.Hour, m[2]
		if rest == "" {
			return days, false, nil
		}
	}
	more, err := time.ParseDuration(rest)
	if err != nil || (days > 0 && more < 0) {
		return 0, false, fmt.Errorf("%q is not a duration: write a number with its unit, d (days), h, m or s, such as 7d, 1d12h or 24h", s)
	}
	return days + more, false, nil
}

// Set parses s and checks it is within range.
func (v *validFor) Set(s string) error {
	d, bare, err := parseValidFor(s, v.bareDays)
	if err != nil {
		return fmt.Errorf("--%s %s: %w", flagValidFor, s, err)
	}
	if d < v.min || d > v.max {
		return fmt.Errorf("--%s %s: give %s", flagValidFor, s, v.bounds())
	}
	v.d, v.bare, v.raw = d, bare, s
	return nil
}

// bounds says what the flag accepts, in the form the user wrote: a
// renew --valid-for 0 is answered in days.
func (v *validFor) bounds() string {
	day := 24 * time.Hour
	if v.bareDays {
		return fmt.Sprintf("1 to %d days for AWS KMS (%d for Key Vault), or a duration with its unit from %s, such as 90d", 365, v.max/day, formatValidFor(v.min))
	}
	s := fmt.Sprintf("%s to %s", formatValidFor(v.min), formatValidFor(v.max))
	if v.max%day == 0 {
		s += fmt.Sprintf(" (%dh)", v.max/time.Hour)
	}
	return s + ", such as " + formatValidFor(min(max(day, v.min), v.max))
}

// given is the value as the user wrote it, or as it is best written.
func (v *validFor) given() string {
	if v == nil {
		return ""
	}
	if v.raw != "" {
		return v.raw
	}
	return v.String()
}

// String is the value as it is best written: whole days as Nd.
func (v *validFor) String() string {
	if v == nil {
		return ""
	}
	return formatValidFor(v.d)
}

func formatValidFor(d time.Duration) string {
	day := 24 * time.Hour
	switch {
	case d >= day && d%day == 0:
		return fmt.Sprintf("%dd", d/day)
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// validForOf is the --valid-for value of c's command; when it was given
// as a bare number of days, a note on w says to write the unit.
func validForOf(c *cliContext, w io.Writer) time.Duration {
	v := validForValue(c)
	if v == nil {
		return 0
	}
	if note := v.note(); note != "" && w != nil {
		fmt.Fprintln(w, "kmsbridge: "+note)
	}
	return v.d
}

// validForValue is c's --valid-for, or nil.
func validForValue(c *cliContext) *validFor {
	v, _ := c.Generic(flagValidFor).(*validFor)
	return v
}

// note is the deprecation note of a bare number of days, or "".
func (v *validFor) note() string {
	if !v.bare {
		return ""
	}
	return fmt.Sprintf("--valid-for %d without a unit means days, which is deprecated: write --valid-for %s (durations take a unit: d, h, m or s)", int64(v.d/(24*time.Hour)), formatValidFor(v.d))
}
