package record

import (
	"slices"
	"testing"
	"unicode/utf16"
)

func TestCanonical(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   any
		want string
	}{
		{"ok members sorted", map[string]any{"b": 1, "a": "x", "C": true}, `{"C":true,"a":"x","b":1}`},
		{"ok members sorted by UTF-16 code units", map[string]string{"\uff61": "halfwidth", "\U0001F600": "emoji"}, `{"😀":"emoji","｡":"halfwidth"}`},
		{"ok escapes", "\"\\\b\f\n\r\t\x00\x1f", `"\"\\\b\f\n\r\t\u0000\u001f"`},
		{"ok no other escapes", "<>&/\u2028é\x7f", "\"<>&/\u2028é\x7f\""},
		{"ok nested and null", map[string]any{"z": nil, "y": []any{map[string]int{"b": 2, "a": -1}}}, `{"y":[{"a":-1,"b":2}],"z":null}`},
		{"ok largest safe integer", int64(1<<53 - 1), `9007199254740991`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := canonical(tt.in)
			if err != nil || string(got) != tt.want {
				t.Errorf("got %s, %v; want %s", got, err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name string
		in   any
	}{
		{"fail integer beyond 2^53", int64(1 << 53)},
		{"fail fraction", 1.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := canonical(tt.in); err == nil {
				t.Errorf("got %s, want an error", got)
			}
		})
	}
}

// TestCompareUTF16 checks the allocation-free member order against the
// definition (RFC 8785 section 3.2.3: the names' UTF-16 code units) on
// names mixing ASCII, the BMP on both sides of the surrogates, and runes
// above U+FFFF.
func TestCompareUTF16(t *testing.T) {
	alphabet := []rune{'A', 'a', 'z', 0x7f, 0xe9, 0x20ac, 0xd7ff, 0xe000, 0xff61, 0xfffd, 0x10000, 0x1f600, 0x10ffff}
	var names []string
	for _, a := range alphabet {
		names = append(names, string(a))
		for _, b := range alphabet {
			names = append(names, string([]rune{a, b}), string([]rune{a, b, a}))
		}
	}
	names = append(names, "")
	want := func(x, y string) int {
		return slices.Compare(utf16.Encode([]rune(x)), utf16.Encode([]rune(y)))
	}
	for _, x := range names {
		for _, y := range names {
			if got, w := compareUTF16(x, y), want(x, y); got != w {
				t.Fatalf("compareUTF16(%+q, %+q) = %d, want %d", x, y, got, w)
			}
		}
	}
}
