package kmsemu

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// validator collects model-constraint violations and reports them the way
// AWS does: "2 validation errors detected: Value null at 'keyId' failed to
// satisfy constraint: Member must not be null; ...", as ValidationException.
type validator struct {
	errs []string
}

func (v *validator) add(msg string) { v.errs = append(v.errs, msg) }

func (v *validator) err() *apiError {
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return errorf("ValidationException", "1 validation error detected: %s", v.errs[0])
	default:
		return errorf("ValidationException", "%d validation errors detected: %s", len(v.errs), strings.Join(v.errs, "; "))
	}
}

// required checks that a member was sent. field is the lowerCamel member
// name AWS uses in these messages.
func (v *validator) required(field string, present bool) bool {
	if !present {
		v.add(fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", field))
	}
	return present
}

// strLen checks a string member's length; the value is quoted in the message
// as AWS does, so never use it for secrets.
func (v *validator) strLen(field string, s *string, min, max int) {
	if s == nil {
		return
	}
	n := len([]rune(*s))
	if n < min {
		v.add(fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: Member must have length greater than or equal to %d", *s, field, min))
	} else if n > max {
		v.add(fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", truncate(*s), field, max))
	}
}

// blobLen checks a blob member's length without echoing its content.
func (v *validator) blobLen(field string, b []byte, min, max int) {
	if b == nil {
		return
	}
	if len(b) < min {
		v.add(fmt.Sprintf("Value at '%s' failed to satisfy constraint: Member must have length greater than or equal to %d", field, min))
	} else if len(b) > max {
		v.add(fmt.Sprintf("Value at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", field, max))
	}
}

func (v *validator) pattern(field string, s *string, re *regexp.Regexp) {
	if s == nil || re.MatchString(*s) {
		return
	}
	v.add(fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: Member must satisfy regular expression pattern: %s", truncate(*s), field, re.String()))
}

func (v *validator) enum(field string, s *string, allowed []string) {
	if s == nil || slices.Contains(allowed, *s) {
		return
	}
	v.add(fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum value set: [%s]", truncate(*s), field, strings.Join(allowed, ", ")))
}

func (v *validator) intRange(field string, n *int32, min, max int32) {
	if n == nil || (*n >= min && *n <= max) {
		return
	}
	v.add(fmt.Sprintf("Value '%d' at '%s' failed to satisfy constraint: Member must have value between %d and %d", *n, field, min, max))
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func enumValues[T ~string](vals []T) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out
}

// page cuts a list of n items into the page that Limit and Marker ask for.
// Markers are opaque to clients; here they are the index of the next item.
func page(n int, limit *int32, marker *string, defLimit, maxLimit int32) (start, end int, next *string, truncated bool, aerr *apiError) {
	var v validator
	v.intRange("limit", limit, 1, maxLimit)
	v.strLen("marker", marker, 1, 1024)
	if err := v.err(); err != nil {
		return 0, 0, nil, false, err
	}
	lim := int(defLimit)
	if limit != nil {
		lim = int(*limit)
	}
	if marker != nil {
		i, err := strconv.Atoi(strings.TrimPrefix(*marker, "kmsemu-"))
		if err != nil || !strings.HasPrefix(*marker, "kmsemu-") || i < 0 || i > n {
			return 0, 0, nil, false, errorf("InvalidMarkerException", "Marker %q is not one this server issued", *marker)
		}
		start = i
	}
	end = min(start+lim, n)
	if end < n {
		m := "kmsemu-" + strconv.Itoa(end)
		next, truncated = &m, true
	}
	return start, end, next, truncated, nil
}
