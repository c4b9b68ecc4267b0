package kmsimport

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// excerptWhole is Excerpt as it was, quoting the whole input: the bounded
// Excerpt must say exactly the same of every input.
func excerptWhole(s string) string {
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	if utf8.RuneCountInString(q) <= excerptLen {
		return q
	}
	r := []rune(q)
	return fmt.Sprintf("%s... (%d characters)", string(r[:excerptLen]), utf8.RuneCountInString(s))
}

func TestExcerptQuotesOnlyWhatItShows(t *testing.T) {
	units := []string{"x", "é", "\n", "\xff", "日本", "\U0001F600", "\x00", `"`}
	for _, u := range units {
		for n := 0; n <= 2*excerptLen+3; n++ {
			s := strings.Repeat(u, n)
			if got, want := Excerpt(s), excerptWhole(s); got != want {
				t.Fatalf("Excerpt(%q × %d) = %q, want %q", u, n, got, want)
			}
			mixed := strings.Repeat("a", n) + u + strings.Repeat("b", excerptLen)
			if got, want := Excerpt(mixed), excerptWhole(mixed); got != want {
				t.Fatalf("Excerpt(%q) = %q, want %q", mixed, got, want)
			}
		}
	}
	// A huge input allocates about the excerpt, not a copy of itself.
	huge := strings.Repeat("x", 64<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_ = Excerpt(huge)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("Excerpt of 64 MiB allocated %d bytes", n)
	}
}
