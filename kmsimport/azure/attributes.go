package azure

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// The imported key's attributes come from the same flags as the other
// clouds': --valid-to (exp), --not-before (nbf), --disabled (enabled) and
// --tag (tags). They are read back, never assumed: a key this run
// imported must carry exactly what was asked (else ErrVerification); a
// key an earlier run imported keeps what it has, and a difference is a
// warning, since kmsbridge changes no attribute of an existing key.

// attributeDiffs lists how b's attributes differ from the request.
func (r *run) attributeDiffs(b *azkeys.KeyBundle) []string {
	var diffs []string
	a := b.Attributes
	if a == nil {
		a = &azkeys.KeyAttributes{}
	}
	enabled := a.Enabled == nil || *a.Enabled
	if enabled == r.req.Disabled {
		diffs = append(diffs, fmt.Sprintf("enabled is %t, not %t", enabled, !r.req.Disabled))
	}
	sameTime := func(flag string, got, want *time.Time) {
		switch {
		case got == nil && want == nil:
		case got == nil || want == nil || got.Unix() != want.Unix():
			diffs = append(diffs, fmt.Sprintf("%s is %s, not %s", flag, timeOrNone(got), timeOrNone(want)))
		}
	}
	sameTime("expiry (exp, --valid-to)", a.Expires, r.req.Expires)
	sameTime("not-before (nbf, --not-before)", a.NotBefore, r.req.NotBefore)
	keys := make([]string, 0, len(r.req.Tags))
	for k := range r.req.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got := b.Tags[k]; got == nil || *got != r.req.Tags[k] {
			diffs = append(diffs, fmt.Sprintf("tag %s is %q, not %q", k, tag(b.Tags, k), r.req.Tags[k]))
		}
	}
	return diffs
}

func timeOrNone(t *time.Time) string {
	if t == nil {
		return "unset"
	}
	return t.UTC().Format(time.RFC3339)
}

// checkAttributes holds the vault key to the attributes asked for.
func (r *run) checkAttributes(b *azkeys.KeyBundle) error {
	diffs := r.attributeDiffs(b)
	if len(diffs) == 0 {
		return nil
	}
	if r.res.Imported {
		return fmt.Errorf("%w: key %s was imported, but the vault holds other attributes than asked: %s; set them with `az keyvault key set-attributes`", kmsimport.ErrVerification, r.res.KeyID, strings.Join(diffs, "; "))
	}
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("key %s, imported by an earlier run, has other attributes than this command asks (%s): kmsbridge does not change an existing key's attributes; set them with `az keyvault key set-attributes` if you mean to", r.res.KeyID, strings.Join(diffs, "; ")))
	return nil
}
