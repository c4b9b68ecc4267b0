package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// canonical returns the RFC 8785 (JCS) serialisation of v, by way of its
// encoding/json form: json.Marshal decides the members (names from struct
// tags), JCS decides the bytes. Numbers must be integers of magnitude at
// most 2^53-1, the range JCS serialises exactly; strings must be valid UTF-8.
func canonical(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	return appendJCS(nil, tree)
}

const maxSafeInteger = 1<<53 - 1

func appendJCS(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case json.Number:
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil || n > maxSafeInteger || n < -maxSafeInteger {
			return nil, fmt.Errorf("number %s is not an integer JCS serialises exactly", v)
		}
		return strconv.AppendInt(b, n, 10), nil
	case string:
		return appendJCSString(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJCS(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		// JCS orders members by the UTF-16 code units of their names.
		slices.SortFunc(keys, compareUTF16)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJCSString(b, k); err != nil {
				return nil, err
			}
			b = append(b, ':')
			if b, err = appendJCS(b, v[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return nil, fmt.Errorf("cannot serialise %T", v)
}

// compareUTF16 orders valid UTF-8 strings x and y as their UTF-16 code
// units compare, without converting them: runes of the Basic Multilingual
// Plane are one unit each, their own value; a rune above U+FFFF is a
// surrogate pair whose first unit (U+D800 to U+DBFF) sorts after the BMP
// runes below U+E000 and before those from U+E000, and two such pairs
// compare as the runes do.
func compareUTF16(x, y string) int {
	for x != "" && y != "" {
		rx, nx := utf8.DecodeRuneInString(x)
		ry, ny := utf8.DecodeRuneInString(y)
		if rx != ry {
			return cmpInt(utf16First(rx), utf16First(ry), rx, ry)
		}
		x, y = x[nx:], y[ny:]
	}
	return cmpInt(len(x), len(y), 0, 0)
}

// utf16First is the first UTF-16 code unit of r.
func utf16First(r rune) rune {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return hi
	}
	return r
}

// cmpInt compares a and b, then c and d when a and b are equal.
func cmpInt[T rune | int](a, b, c, d T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	case c < d:
		return -1
	case c > d:
		return 1
	}
	return 0
}

// appendJCSString escapes as ECMAScript's JSON.stringify does, which is
// what RFC 8785 section 3.2.2.2 prescribes.
func appendJCSString(b []byte, s string) ([]byte, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("string %q is not valid UTF-8", s)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"'), nil
}
