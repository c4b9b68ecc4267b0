// Package ceremony reads the one file a key ceremony runs from: which HSM
// and token, which KMS account and region, who is present, and every key to
// import with how it is wrapped and when its material expires.
//
// The file is written and signed off before the ceremony day, so it is
// parsed strictly and checked completely before anything is touched: an
// unknown field, a PIN, a key spec KMS would refuse, or a wrapping the key's
// material cannot travel under is an error, and Load reports every such
// problem at once, each with its file, line and field path
// (keys[2].wrapping-algorithm) and what to write instead.
package ceremony

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/internal/safefile"

	"go.yaml.in/yaml/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// File is a whole ceremony, as reviewers signed it off. A *File returned by
// Load has passed Validate: every key in it can be turned into a
// awskms.Request that passes Request.Validate at the time Load was given.
type File struct {
	HSM HSMConfig `yaml:"hsm"`
	KMS KMSConfig `yaml:"kms"`
	// Record is the path of the ceremony record kmsbridge appends to; a
	// re-run of an interrupted ceremony continues it. A relative path is
	// relative to the directory kmsbridge runs in.
	Record string `yaml:"record"`
	// AuditKey, when set, names the HSM key that authenticates the record.
	AuditKey *AuditKey `yaml:"audit-key"`
	// Operators are the people present, by name, as the record lists them.
	Operators   []string    `yaml:"operators"`
	DualControl DualControl `yaml:"dual-control"`
	// Keys are imported in this order.
	Keys []Key `yaml:"keys"`

	// source, lines and digest are set by Load: the file's name, the line
	// of each field path, and the SHA-256 of its bytes.
	source string
	lines  map[string]int
	digest string
}

// HSMConfig says which PKCS#11 module and token hold the keys, and where
// the token's user PIN comes from on the day. The PIN itself never appears
// in the file.
type HSMConfig struct {
	// Module is the absolute path of the vendor's PKCS#11 library.
	Module string `yaml:"module"`
	// ModuleParams is passed to C_Initialize as the library parameter
	// string (NSS softokn needs configdir='sql:DIR' ...); most modules take
	// none.
	ModuleParams string `yaml:"module-params"`
	// Token chooses the token by exactly one of label, serial or slot.
	Token TokenConfig `yaml:"token"`
	// PIN says where the user PIN is read from.
	PIN PINSource `yaml:"pin-source"`
}

// TokenConfig chooses one token. Validate accepts it only when exactly one
// of Label, Serial, Slot and URI is set.
type TokenConfig struct {
	Label  string `yaml:"label"`
	Serial string `yaml:"serial"`
	// Slot is the slot ID as the module numbers them; nil when not used.
	Slot *uint `yaml:"slot"`
	// URI is a PKCS#11 URI (RFC 7512) naming the token, e.g.
	// pkcs11:token=ceremony;serial=7b95...; every attribute given must
	// match. Its module-path may stand in for hsm.module; a PIN in it is
	// refused (the PIN comes from hsm.pin-source).
	URI string `yaml:"uri"`
}

// PINSource says where the token's user PIN is read from on the day.
// Validate accepts it only when exactly one of Env, File and Prompt is set;
// it never holds the PIN itself.
type PINSource struct {
	// Env is the name of an environment variable that holds the PIN.
	Env string `yaml:"env"`
	// File is the path of a file (mode 0600) that holds the PIN.
	File string `yaml:"file"`
	// Prompt asks for the PIN on the terminal, without echo.
	Prompt bool `yaml:"prompt"`
}

// KMSConfig says which AWS KMS the keys go to.
type KMSConfig struct {
	// Region is the AWS region, always explicit: it decides where the keys
	// live.
	Region string `yaml:"region"`
	// Endpoint, when set, replaces AWS's KMS endpoint for the Region (a
	// VPC endpoint, or an emulator on 127.0.0.1 for a rehearsal). It
	// carries no credentials. An endpoint AWS does not serve for the Region
	// is used only when AllowEndpoint confirms it.
	Endpoint string `yaml:"endpoint"`
	// AllowEndpoint repeats Endpoint to confirm that an endpoint which is
	// not AWS's is meant (docs/endpoint-policy.md).
	AllowEndpoint string `yaml:"allow-endpoint"`
	// CABundle is a PEM file of the CA certificates that verify the
	// endpoint instead of the system roots (a private CA).
	CABundle string `yaml:"ca-bundle"`
	// Profile, when set, is the AWS shared-config profile to use.
	Profile string `yaml:"profile"`
}

// AuditKey names the HSM key that authenticates the ceremony record.
type AuditKey struct {
	// Label is the HSM key's CKA_LABEL; it must not be one of the keys
	// being imported.
	Label string `yaml:"label"`
	// PublicKey, when set, is the audit public key's PEM file (what
	// audit-key create wrote), for the online steps of the split: prepare
	// names the key in the bundle, and upload checks the wrapped file's
	// signature against it. A relative path is relative to the directory
	// kmsbridge runs in.
	PublicKey string `yaml:"public-key"`
}

// DualControl holds the settings that keep key material under the control
// of more than one person. Each must be written out: none has a default.
type DualControl struct {
	// WrapWithTrusted gives every key generated in the ceremony
	// CKA_WRAP_WITH_TRUSTED=true, so it can only ever be wrapped by a key
	// the security officer marked trusted.
	WrapWithTrusted *bool `yaml:"wrap-with-trusted"`
}

// Key is one key to import: the HSM master copy, the KMS key it becomes,
// how its material is wrapped on the way, and when it expires in KMS.
type Key struct {
	// HSMLabel is the CKA_LABEL of the HSM key: the one Generate makes, or
	// the existing one to import.
	HSMLabel string `yaml:"hsm-label"`
	// Generate is true to generate a new key in the HSM, false to import an
	// existing one. It must be written out.
	Generate *bool `yaml:"generate"`
	// KeySpec is the KMS key spec, e.g. SYMMETRIC_DEFAULT, HMAC_256,
	// ECC_NIST_P256.
	KeySpec string `yaml:"key-spec"`
	// KeyUsage is the KMS key usage, one the key spec allows.
	KeyUsage string `yaml:"key-usage"`
	// Alias is the KMS alias (alias/NAME) the key gets.
	Alias string `yaml:"alias"`
	// Description is the description of a new KMS key.
	Description string `yaml:"description"`
	// Tags are set on the KMS key besides kmsbridge's own link tags.
	Tags map[string]string `yaml:"tags"`
	// WrappingAlgorithm is the KMS wrapping algorithm, one KMS accepts for
	// the key spec under WrappingKeySpec.
	WrappingAlgorithm string `yaml:"wrapping-algorithm"`
	// WrappingKeySpec is the size of KMS's RSA wrapping key.
	WrappingKeySpec string `yaml:"wrapping-key-spec"`
	// ValidTo is when the material expires in KMS: RFC 3339, or a date
	// meaning 00:00 UTC. Exactly one of ValidTo and NoExpiry is set.
	ValidTo string `yaml:"valid-to"`
	// NoExpiry is true for material that does not expire in KMS.
	NoExpiry bool `yaml:"no-expiry"`
	// KMSKeyID, when set, imports into this existing EXTERNAL KMS key (key
	// ID or ARN) instead of creating one.
	KMSKeyID string `yaml:"kms-key-id"`
	// MultiRegion makes the KMS key a multi-Region primary, replicated to
	// every ReplicaRegions Region with the same material imported into each.
	MultiRegion bool `yaml:"multi-region"`
	// ReplicaRegions are the Regions of the multi-Region key's replicas.
	ReplicaRegions []string `yaml:"replica-regions"`
	// RotateTo, when set, rotates the existing KMS key (found by alias or
	// kms-key-id; hsm-label is its current HSM key) to new material from a
	// new HSM key with this label: on demand for SYMMETRIC_DEFAULT, else a
	// new KMS key with the alias moved. Once done, runs only verify.
	RotateTo string `yaml:"rotate-to"`
	// Targets are the other clouds the same HSM material goes to after
	// AWS KMS: Google Cloud KMS and Azure Key Vault (see Target).
	Targets []Target `yaml:"targets"`
	// AWS says whether the key goes to AWS KMS. Unset, it does when the
	// file has a kms section (or the key has no targets); false sends the
	// key to its targets only, and then the AWS KMS fields (alias,
	// key-usage, wrapping-algorithm, ...) are refused (see GoesToAWS).
	AWS *bool `yaml:"aws"`
}

// HasKMS says whether the file has a kms section: where the keys that go
// to AWS KMS go.
func (f *File) HasKMS() bool {
	if f.KMS != (KMSConfig{}) {
		return true
	}
	_, ok := f.lines["kms"]
	return ok
}

// GoesToAWS says whether key k of f goes to AWS KMS: as its aws field
// says, else when the file has a kms section, else when the key has no
// other target (it must go somewhere, and validation then asks for kms).
// AWS KMS is then the key's first target; a key that does not go there
// is generated by, and sent from, its first target.
func (f *File) GoesToAWS(k Key) bool {
	if k.AWS != nil {
		return *k.AWS
	}
	return f.HasKMS() || len(k.Targets) == 0
}

// NeedsAWS says whether any key of f goes to AWS KMS: only then does a
// run need the kms section, an AWS client and the AWS journal.
func (f *File) NeedsAWS() bool {
	for _, k := range f.Keys {
		if f.GoesToAWS(k) {
			return true
		}
	}
	return false
}

// Load reads the ceremony file at path, parses it strictly and validates
// it as of now. It returns a *File only when there is nothing to fix.
// Otherwise the error is an Errors listing every problem found, in file
// order, each naming the file, the line where known and the field path;
// Errors matches kmsimport.ErrInvalidInput under errors.Is. A file that
// cannot be read (missing, not a regular file, too large) gives a
// *safefile.Error (safefile.ErrBadFile; fs.ErrNotExist when missing).
func Load(path string, now time.Time) (*File, error) {
	data, err := safefile.Read("ceremony file", path, safefile.MaxCeremony)
	if err != nil {
		return nil, err
	}
	f, errs, broken := parse(path, data)
	if f != nil {
		errs = append(errs, f.validate(now).outside(broken)...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return f, nil
}

// Source is the path the file was loaded from; "" for a File built in code.
func (f *File) Source() string { return f.source }

// Digest is the lowercase hex SHA-256 of the file's bytes as Load read
// them, so the record can show which signed-off file ran; "" for a File
// built in code.
func (f *File) Digest() string { return f.digest }

// PINSource says where the token's user PIN comes from. Validate has
// checked that exactly one way is chosen.
func (f *File) PINSource() PINSource { return f.HSM.PIN }

// ModuleConfig is the PKCS#11 module to load, as hsm.LoadModule takes it.
func (f *File) ModuleConfig() hsm.ModuleConfig {
	cfg := hsm.ModuleConfig{Path: f.HSM.Module, Params: f.HSM.ModuleParams}
	if u, err := hsm.ParseURI(f.HSM.Token.URI); err == nil && cfg.Path == "" {
		cfg.Path = u.ModulePath
	}
	return cfg
}

// TokenSelector is the token to open, as the hsm package takes it; for a
// validated File exactly one of its fields is set.
func (f *File) TokenSelector() hsm.TokenSelector {
	t := f.HSM.Token
	if t.URI != "" && t.Label == "" && t.Serial == "" && t.Slot == nil {
		if u, err := hsm.ParseURI(t.URI); err == nil {
			if sel, err := u.Selector(); err == nil {
				return sel
			}
		}
	}
	return hsm.TokenSelector{Label: t.Label, Serial: t.Serial, Slot: t.Slot}
}

// validTo is the key's valid-to, zero when it has none; only a valid-to
// that is not a time fails.
func (k Key) validTo() (time.Time, error) {
	if k.ValidTo == "" {
		return time.Time{}, nil
	}
	return parseTime(k.ValidTo)
}

// parseTime reads RFC 3339, or a date meaning 00:00 UTC: what kmsbridge
// import --valid-to takes.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is not a time: write RFC 3339 like 2027-06-30T00:00:00Z, or a date like 2027-06-30 (meaning 00:00 UTC)", kmsimport.ErrInvalidInput, s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parse decodes data strictly. It returns a File (possibly partly filled)
// unless the YAML itself cannot be read; every structural problem: an
// unknown field, a PIN, a value of the wrong kind, a key given twice; and
// the field paths whose decoded value is not what the file says.
func parse(name string, data []byte) (*File, Errors, []string) {
	sum := sha256.Sum256(data)
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "the file is empty: write the hsm, kms, record, operators, dual-control and keys sections (see ceremony/testdata/example.yaml)"}}, nil
		}
		return nil, Errors{syntaxError(name, err)}, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, Errors{syntaxError(name, err)}, nil
		}
		return nil, Errors{{File: name, Line: line, Msg: "a second YAML document (after ---): a ceremony is one document; merge them or remove the ---"}}, nil
	}

	w := &walker{file: name, lines: map[string]int{}, atLine: map[int]string{}}
	if len(root.Content) == 1 {
		w.walk(root.Content[0], reflect.TypeOf(File{}), "")
	}

	// The walk above already reports everything KnownFields would, with
	// field paths; the decoder's own strictness stays as a second net.
	f := &File{source: name, lines: w.lines, digest: hex.EncodeToString(sum[:])}
	if serr := w.strictDecode(data, f); serr != nil {
		return nil, append(w.errs, serr), nil
	}
	return f, w.errs, w.broken
}

// strictDecode decodes data into v with yaml.v3's KnownFields, the second
// net behind the walk: each type error the walk has not reported already
// is added to w.errs and marks its field broken. A syntax error is
// returned instead, for the caller to stop with.
func (w *walker) strictDecode(data []byte, v any) *Error {
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	err := strict.Decode(v)
	if err == nil {
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return syntaxError(w.file, err)
	}
	for _, msg := range te.Errors {
		line, text := splitLine(msg)
		if w.reported[line] {
			continue
		}
		field := w.atLine[line]
		w.errs = append(w.errs, &Error{File: w.file, Line: line, Field: field, Msg: redact(text)})
		w.brokenAt(field)
	}
	return nil
}

// syntaxError turns a YAML syntax error ("yaml: line 3: ...") into an
// Error with the line.
func syntaxError(name string, err error) *Error {
	line, text := splitLine(strings.TrimPrefix(err.Error(), "yaml: "))
	return &Error{File: name, Line: line, Msg: "not valid YAML: " + redact(text)}
}

var lineRE = lazyre.New(`^line (\d+): `)

// splitLine splits yaml.v3's "line N: message" into N and the message.
func splitLine(msg string) (int, string) {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0, msg
	}
	n, _ := strconv.Atoi(m[1])
	return n, msg[len(m[0]):]
}

var quotedRE = lazyre.New("`[^`]*`")

// redact drops the values yaml.v3 quotes in its messages: a PIN typed
// into the wrong field must not reach a log.
func redact(msg string) string {
	return quotedRE.ReplaceAllString(msg, "(value not shown)")
}

// walker checks a YAML node tree against the Go types it will decode into,
// before decoding, so that every structural error names its field path and
// none repeats a value.
type walker struct {
	file string
	errs Errors
	// lines maps a field path to the line it starts on; atLine is the
	// reverse, first path on a line.
	lines  map[string]int
	atLine map[int]string
	// reported marks lines that already have an error from the walk.
	reported map[int]bool
	// broken are field paths whose value did not decode; validation says
	// nothing about them or anything under them.
	broken []string
}

func (w *walker) errorf(n *yaml.Node, path, format string, args ...any) {
	w.errs = append(w.errs, &Error{File: w.file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)})
	if w.reported == nil {
		w.reported = map[int]bool{}
	}
	w.reported[n.Line] = true
	w.brokenAt(path)
}

func (w *walker) brokenAt(path string) { w.broken = append(w.broken, path) }

// dropped marks path as not decoded at all. yaml.v3 leaves a list entry
// that does not decode out of the list, so the entries after it move up
// one: the whole list is then marked, lest validation name the wrong entry.
func (w *walker) dropped(path string) {
	w.brokenAt(path)
	if strings.HasSuffix(path, "]") {
		w.brokenAt(parent(path))
	}
}

func (w *walker) at(n *yaml.Node, path string) {
	if _, ok := w.lines[path]; !ok {
		w.lines[path] = n.Line
	}
	if _, ok := w.atLine[n.Line]; !ok {
		w.atLine[n.Line] = path
	}
}

// pinNames are field names that would hold a PIN or password.
var pinNames = map[string]bool{"pin": true, "user-pin": true, "so-pin": true, "password": true}

func isPINName(s string) bool {
	return pinNames[strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "_", "-")]
}

func child(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// walk checks n against t. Null values are accepted anywhere: they mean
// the field is absent, which validation then judges.
func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		w.errorf(n, path, "YAML aliases (*%s) are not allowed: write the value out, so reviewers read exactly what runs", n.Value)
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.errorf(n, path, "must be a mapping of fields (%s), not %s", strings.Join(fieldNames(t), ", "), kindOf(n))
			w.dropped(path)
			return
		}
		fields := fieldsOf(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := child(path, k.Value)
			w.at(k, p)
			if first, dup := seen[k.Value]; dup {
				w.errorf(k, p, "is given twice (first on line %d): keep one", first)
				w.dropped(path)
				continue
			}
			seen[k.Value] = k.Line
			if k.Value == "<<" {
				w.errorf(k, p, "YAML merge keys (<<) are not allowed: write the fields out, so reviewers read exactly what runs")
				continue
			}
			if isPINName(k.Value) {
				w.errorf(k, p, "PINs never go in the ceremony file, which is shared, reviewed and kept: remove %s and set hsm.pin-source to env: VARIABLE, file: PATH or prompt: true", k.Value)
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				w.errorf(k, p, "unknown field %q: %s takes only %s", k.Value, describe(path), strings.Join(fieldNames(t), ", "))
				continue
			}
			w.walk(v, ft, p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.errorf(n, path, "must be a list, not %s", kindOf(n))
			w.dropped(path)
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.at(item, p)
			w.walk(item, t.Elem(), p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.errorf(n, path, "must be a mapping of names to values, not %s", kindOf(n))
			w.dropped(path)
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := child(path, k.Value)
			w.at(k, p)
			switch first, dup := seen[k.Value]; {
			case dup:
				w.errorf(k, p, "is given twice (first on line %d): keep one", first)
				w.dropped(path)
			case k.Kind != yaml.ScalarNode:
				w.errorf(k, path, "names must be plain strings, not %s", kindOf(k))
			case isPINName(k.Value):
				w.errorf(k, p, "PINs and passwords never go in the ceremony file, which is shared, reviewed and kept: remove %s", k.Value)
			default:
				seen[k.Value] = k.Line
				w.walk(v, t.Elem(), p)
			}
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			w.errorf(n, path, "must be a single value, not %s", kindOf(n))
			w.dropped(path)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			w.errorf(n, path, "must be true or false, not %s", kindOf(n))
		}
	case reflect.Uint:
		if _, err := strconv.ParseUint(n.Value, 0, strconv.IntSize); n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			w.errorf(n, path, "must be a whole number, 0 or more, not %s", kindOf(n))
		}
	}
}

// kindOf describes what a node holds, without its value.
func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.Tag {
	case "!!bool":
		return "true/false"
	case "!!int", "!!float":
		return "a number"
	}
	return "a string"
}

// describe names the section at path for an unknown-field message.
func describe(path string) string {
	switch {
	case path == "":
		return "the top level"
	case strings.HasSuffix(path, "]"):
		return "each entry of " + path[:strings.LastIndex(path, "[")]
	}
	return path
}

// fieldsOf maps a struct's YAML field names to their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if name := yamlName(sf); name != "" {
			m[name] = sf.Type
		}
	}
	return m
}

// fieldNames lists a struct's YAML field names in declaration order.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func yamlName(sf reflect.StructField) string {
	if !sf.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}
