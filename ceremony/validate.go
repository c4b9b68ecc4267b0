package ceremony

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Error is one problem in a ceremony file: where it is, which field, and
// what to write instead. It never quotes a value that could be a secret.
type Error struct {
	// File is the ceremony file; "" for a File built in code.
	File string
	// Line is the 1-based line the problem is on, or of the nearest
	// enclosing section when the field is missing; 0 when not known.
	Line int
	// Field is the field path, e.g. keys[2].wrapping-algorithm; "" when the
	// problem is with the file as a whole.
	Field string
	// Msg says what is wrong and how to fix it.
	Msg string
}

// Error reads "FILE:LINE: FIELD: MSG", or "FIELD is required: ..." when
// the message is a predicate of the field.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		if strings.HasPrefix(e.Msg, "is ") || strings.HasPrefix(e.Msg, "must ") {
			b.WriteString(" ")
		} else {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap makes every Error match kmsimport.ErrInvalidInput: nothing was
// touched, and the fix is in the file.
func (e *Error) Unwrap() error { return kmsimport.ErrInvalidInput }

// Errors is every problem found in a ceremony file, in file order. It is
// never empty when returned as an error.
type Errors []*Error

// Error lists every problem, one a line.
func (es Errors) Error() string {
	if len(es) == 1 {
		return es[0].Error()
	}
	var b strings.Builder
	name := "the ceremony file"
	if len(es) > 0 && es[0].File != "" {
		name = es[0].File
	}
	fmt.Fprintf(&b, "%d problems in %s; fix them all before the ceremony:", len(es), name)
	for _, e := range es {
		b.WriteString("\n\t" + e.Error())
	}
	return b.String()
}

// Unwrap returns each problem, so errors.Is(err, kmsimport.ErrInvalidInput)
// and errors.As(err, **Error) work on the list.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sort orders the problems by line, keeping the order they were found in
// on each line; problems with no line go last.
func (es Errors) sort() {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i].Line, es[j].Line
		if a == 0 || b == 0 {
			return a != 0 && b == 0
		}
		return a < b
	})
}

// outside drops the problems in or under any of the given field paths,
// where a problem has already been reported and the decoded value is not
// what the file says.
func (es Errors) outside(paths []string) Errors {
	var out Errors
	for _, e := range es {
		if !underAny(e.Field, paths) {
			out = append(out, e)
		}
	}
	return out
}

func underAny(field string, paths []string) bool {
	for _, p := range paths {
		if p == "" || field == p || strings.HasPrefix(field, p+".") || strings.HasPrefix(field, p+"[") {
			return true
		}
	}
	return false
}

// Validate checks the whole file as of now, before anything is touched,
// and returns an Errors listing every problem (nil when there is none).
// The key spec, usage, wrapping and expiry rules are kmsimport's own, so a
// key that passes here passes awskms.Request.Validate at now.
func (f *File) Validate(now time.Time) error {
	if errs := f.validate(now); len(errs) > 0 {
		errs.sort()
		return errs
	}
	return nil
}

func (f *File) validate(now time.Time) Errors {
	c := &checker{f: f}
	f.HSM.validate(c)
	// A file whose keys all go to other clouds needs no kms section.
	if f.HasKMS() || f.needsLead() {
		before := len(c.errs)
		f.KMS.validate(c)
		if !f.HasKMS() && len(c.errs) > before {
			// A key without targets goes to AWS KMS; say how to send
			// keys elsewhere only, for a file meant for other clouds.
			c.errs[before].Msg += " (a file with no kms section sends its keys to their targets only: every key then needs targets, gcp: or azure:; " + f.keysWithoutTargets() + ")"
		}
	}
	if strings.TrimSpace(f.Record) == "" {
		c.add("record", "is required: the path of the ceremony record kmsbridge writes, e.g. ceremony-2026-06-01.json (it must not exist yet; records are never overwritten)")
	}
	if f.AuditKey != nil && strings.TrimSpace(f.AuditKey.Label) == "" {
		c.add("audit-key.label", "is required when audit-key is given: the CKA_LABEL of the HSM key that authenticates the record (or remove audit-key)")
	}
	f.validateOperators(c)
	if f.DualControl.WrapWithTrusted == nil {
		c.add("dual-control.wrap-with-trusted", "is required: true to give every generated HSM key CKA_WRAP_WITH_TRUSTED (it can then be wrapped only by keys the security officer marked trusted), false not to")
	}
	if len(f.Keys) == 0 {
		c.add("keys", "is required: list at least one key to import")
	}
	pc := f.kmsCloud()
	for i := range f.Keys {
		if f.lead(f.Keys[i]) != nil {
			pc.validateKey(c, f, i, now)
		} else {
			f.Keys[i].validateTargetsOnly(c, fmt.Sprintf("keys[%d]", i), f.HasKMS(), f.DualControl.WrapWithTrusted, now)
		}
		f.Keys[i].validateTargets(c, fmt.Sprintf("keys[%d]", i), now)
		pc.validateSection(c, f, i)
	}
	f.validateUnique(c)
	f.validateTargetsUnique(c)
	return c.errs
}

// checker collects problems, placing each on the line of its field or of
// the nearest enclosing section that the file has (no line when none has).
type checker struct {
	f    *File
	errs Errors
}

func (c *checker) add(field, format string, args ...any) {
	c.errs = append(c.errs, &Error{File: c.f.source, Line: c.line(field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// addErr adds a problem kmsimport found, in the file's words: without the
// "invalid input" prefix, and with field names where it names flags.
func (c *checker) addErr(field string, err error) {
	var ve *kmsimport.ValidationError
	if errors.As(err, &ve) {
		c.add(field, "%s", ve.Message())
		return
	}
	c.add(field, "%s", inFileTerms(err))
}

func (c *checker) line(field string) int {
	for p := field; ; p = parent(p) {
		if n, ok := c.f.lines[p]; ok {
			return n
		}
		if p == "" {
			return 0
		}
	}
}

// parent is the enclosing path: keys[1].alias -> keys[1] -> keys -> "".
func parent(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

// flagTerms maps the flags kmsimport's messages name to the ceremony
// file's fields, which carry the same names without the dashes.
var flagTerms = strings.NewReplacer(
	"--key-label", "hsm-label",
	"--generate", "generate",
	"--key-spec", "key-spec",
	"--key-usage", "key-usage",
	"--alias", "alias",
	"--valid-to", "valid-to",
	"--no-expiry", "no-expiry",
	"--wrapping-algorithm", "wrapping-algorithm",
	"--wrapping-key-spec", "wrapping-key-spec",
	"--kms-key-id", "kms-key-id",
	"--token-label", "label",
	"--token-serial", "serial",
	"--slot", "slot",
)

func inFileTerms(err error) string {
	msg := strings.TrimPrefix(err.Error(), kmsimport.ErrInvalidInput.Error()+": ")
	return flagTerms.Replace(msg)
}

func (h HSMConfig) validate(c *checker) {
	var uriModule string
	if h.Token.URI != "" {
		u, err := hsm.ParseURI(h.Token.URI)
		switch {
		case err != nil:
			c.add("hsm.token.uri", "%v", err)
		case h.Token.Label != "" || h.Token.Serial != "" || h.Token.Slot != nil:
			c.add("hsm.token", "has uri and label, serial or slot: choose the token one way")
		case u.PINFile != "":
			c.add("hsm.token.uri", "has pin-source: say where the PIN comes from in hsm.pin-source instead")
		case u.HasKey():
			c.add("hsm.token.uri", "names a key (object or id): hsm.token.uri names only the token; keys are named by keys[].hsm-label")
		default:
			if _, err := u.Selector(); err != nil {
				c.add("hsm.token.uri", "%v", err)
			}
			uriModule = u.ModulePath
			if uriModule != "" && h.Module != "" && uriModule != h.Module {
				c.add("hsm.module", "is %q but hsm.token.uri's module-path is %q: give one", h.Module, uriModule)
			}
		}
		if strings.TrimSpace(h.Module) == "" && uriModule != "" {
			h.PIN.validate(c, "hsm.pin-source")
			return
		}
	}
	switch {
	case strings.TrimSpace(h.Module) == "":
		c.add("hsm.module", "is required: the absolute path of the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
	case !filepath.IsAbs(h.Module):
		c.add("hsm.module", "must be an absolute path (it is %q), so the library loaded does not depend on the directory kmsbridge runs in", h.Module)
	}
	if h.Token.URI == "" {
		if err := (&File{HSM: h}).TokenSelector().Validate(); err != nil {
			c.add("hsm.token", "%s", inFileTerms(err))
		}
	}
	h.PIN.validate(c, "hsm.pin-source")
}

var envNameRE = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (p PINSource) validate(c *checker, path string) {
	n := 0
	if p.Env != "" {
		n++
		if !envNameRE.MatchString(p.Env) {
			// Not quoted: a PIN written here by mistake must not be echoed.
			c.add(path+".env", "must be the name of an environment variable (letters, digits and _, not starting with a digit), never the PIN itself")
		}
	}
	if p.File != "" {
		n++
	}
	if p.Prompt {
		n++
	}
	switch n {
	case 0:
		c.add(path, "is required: say where the token's user PIN comes from on the day, with exactly one of env: VARIABLE, file: PATH or prompt: true (PINs never go in this file)")
	case 1:
	default:
		c.add(path, "must have exactly one of env, file and prompt, not several: choose one")
	}
}

func (f *File) validateOperators(c *checker) {
	if len(f.Operators) == 0 {
		c.add("operators", "is required: list the people present, by name, as the record should show them")
	}
	seen := map[string]int{}
	for i, name := range f.Operators {
		field := fmt.Sprintf("operators[%d]", i)
		name = strings.TrimSpace(name)
		if name == "" {
			c.add(field, "is empty: write the operator's name, or remove the entry")
			continue
		}
		if j, dup := seen[name]; dup {
			c.add(field, "%q is also operators[%d]: list each person once", name, j)
			continue
		}
		seen[name] = i
	}
}

// validateUnique reports HSM labels, aliases and KMS key IDs used by more
// than one key, and an audit key that is also a key to import.
func (f *File) validateUnique(c *checker) {
	type use struct {
		what, fix string
		get       func(Key) string
	}
	uses := []use{
		{"hsm-label", "each key needs its own HSM key", func(k Key) string { return k.HSMLabel }},
		{"alias", "an alias points to one KMS key", func(k Key) string { return k.Alias }},
		{"kms-key-id", "a KMS key accepts the material of one HSM key only", func(k Key) string { return k.KMSKeyID }},
	}
	for _, u := range uses {
		first := map[string]int{}
		for i, k := range f.Keys {
			v := u.get(k)
			if v == "" {
				continue
			}
			if j, dup := first[v]; dup {
				c.add(fmt.Sprintf("keys[%d].%s", i, u.what), "%q is also keys[%d].%s: %s", v, j, u.what, u.fix)
				continue
			}
			first[v] = i
		}
	}
	// A rotate-to label names an HSM key on the same token as every
	// hsm-label: two keys that would generate (or take up) one label would
	// leave two HSM keys under it, or one HSM key behind two KMS keys.
	labels := map[string]string{}
	for i, k := range f.Keys {
		if k.HSMLabel != "" {
			if _, ok := labels[k.HSMLabel]; !ok {
				labels[k.HSMLabel] = fmt.Sprintf("keys[%d].hsm-label", i)
			}
		}
	}
	for i, k := range f.Keys {
		if k.RotateTo == "" || k.RotateTo == k.HSMLabel {
			continue
		}
		if other, dup := labels[k.RotateTo]; dup {
			c.add(fmt.Sprintf("keys[%d].rotate-to", i), "%q is also %s: each HSM key label names one key of the token, so a rotation needs a label no other key of the file uses", k.RotateTo, other)
			continue
		}
		labels[k.RotateTo] = fmt.Sprintf("keys[%d].rotate-to", i)
	}
	if f.AuditKey != nil && f.AuditKey.Label != "" {
		for i, k := range f.Keys {
			if k.RotateTo == f.AuditKey.Label {
				c.add("audit-key.label", "%q is also keys[%d].rotate-to: the audit key must be a key of its own, never one being imported", f.AuditKey.Label, i)
			}
			if k.HSMLabel == f.AuditKey.Label {
				c.add("audit-key.label", "%q is also keys[%d].hsm-label: the audit key must be a key of its own, never one being imported", f.AuditKey.Label, i)
			}
		}
	}
}
