package readme

import (
	"fmt"
	"regexp"
	"strings"
)

// normalisers replace what differs from run to run (ids, times, ports,
// digests, counts of days) with a placeholder, on the README's side and
// the output's alike, so that the rest must match.
var normalisers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`), ""},
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`), "<TIME>"},
	{regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}\b`), "<DATE>"},
	{regexp.MustCompile(`\bmrk-[0-9a-f]{32}\b`), "<KEYID>"},
	{regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`), "<KEYID>"},
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:<PORT>"},
	{regexp.MustCompile(`(%[0-9A-Fa-f]{2}){4,}`), "<PCT>"},
	// A fingerprint read aloud in groups of four.
	{regexp.MustCompile(`\b[0-9a-f]{4}( [0-9a-f]{4}){3,}\b`), "<HEX>"},
	// Any run of six or more hex digits with a digit in it: CKA_IDs,
	// serials, digests, check values, KeyMaterialIds, slot ids.
	{regexp.MustCompile(`\b[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*\b`), "\x00"},
	{regexp.MustCompile(`\b\d+ days\b`), "N days"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(ms|µs|s)\b`), "<DUR>"},
	{regexp.MustCompile(`\s+`), " "},
}

// normalise is a line with what varies between runs replaced.
func normalise(s string) string {
	for _, n := range normalisers {
		if n.with == "\x00" {
			s = n.re.ReplaceAllStringFunc(s, func(h string) string {
				if len(h) >= 6 {
					return "<HEX>"
				}
				return h
			})
			continue
		}
		s = n.re.ReplaceAllString(s, n.with)
	}
	s = strings.TrimSpace(s)
	// The DAYS column of a table: a count after a time.
	s = daysColumn.ReplaceAllString(s, "$1 N$2")
	return s
}

var daysColumn = regexp.MustCompile(`(<TIME>) \d+( |$)`)

// match says whether got (the command's output) is what want (the
// README's) shows: line by line after normalising, where a README line
// "..." stands for any number of lines, and in an excerpt every README
// line must appear in order with anything between.
func match(want, got []string, excerpt bool) error {
	var w, g []string
	for _, l := range want {
		w = append(w, normalise(l))
	}
	for _, l := range got {
		if n := normalise(l); n != "" || !excerpt {
			g = append(g, n)
		}
	}
	if excerpt {
		var x []string
		for _, l := range w {
			x = append(x, "...", l)
		}
		w = append(x, "...")
	}
	if matchLines(w, g) {
		return nil
	}
	// Say where it first goes wrong: the longest prefix of the README's
	// lines that matches.
	best := 0
	for k := len(w); k > 0; k-- {
		if matchPrefix(w[:k], g) {
			best = k
			break
		}
	}
	if best < len(w) {
		return fmt.Errorf("the README's output line %q (normalised) is not in the output where expected", w[best])
	}
	return fmt.Errorf("the output has lines the README does not show")
}

// matchLines matches lines with "..." as a wildcard for any lines
// (memoised: README outputs and command outputs are both short).
func matchLines(w, g []string) bool {
	memo := map[[2]int]bool{}
	var m func(i, j int) bool
	m = func(i, j int) bool {
		key := [2]int{i, j}
		if v, ok := memo[key]; ok {
			return v
		}
		var r bool
		switch {
		case i == len(w):
			r = j == len(g)
		case w[i] == "...":
			r = m(i+1, j) || (j < len(g) && m(i, j+1))
		default:
			r = j < len(g) && w[i] == g[j] && m(i+1, j+1)
		}
		memo[key] = r
		return r
	}
	return m(0, 0)
}

// matchPrefix is matchLines for a prefix of the README's lines.
func matchPrefix(w, g []string) bool {
	return matchLines(append(append([]string{}, w...), "..."), g)
}
