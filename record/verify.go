package record

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Kind is why an entry, or the record as a whole, fails verification. The
// values are stable: scripts may match on them.
type Kind string

const (
	// KindTruncated: the last line has no newline; the record was cut
	// short mid-entry, or a write was interrupted.
	KindTruncated Kind = "truncated"
	// KindMalformed: the line is not a JSON entry of this format (bad
	// JSON, a missing or unknown member, a member of the wrong type).
	KindMalformed Kind = "malformed"
	// KindVersion: the entry is of a format this package does not read.
	KindVersion Kind = "unsupported-version"
	// KindNotCanonical: the line is not the canonical JSON of its own
	// content, which kmsbridge always writes.
	KindNotCanonical Kind = "not-canonical"
	// KindInvalid: a member has a value the format does not allow.
	KindInvalid Kind = "invalid"
	// KindSeq: Seq does not follow the previous entry's: entries are
	// missing, repeated or out of order.
	KindSeq Kind = "seq"
	// KindChain: Prev is not the hash of the previous entry (the SHA-256
	// of its line, or of its signed bytes in Format): the previous entry
	// was changed, removed, inserted or moved.
	KindChain Kind = "chain"
	// KindUnsigned: a public key was given, but the entry is not signed.
	KindUnsigned Kind = "unsigned"
	// KindWrongKey: the entry is signed by another key than the one given.
	KindWrongKey Kind = "wrong-key"
	// KindBadSignature: the signature does not verify under the given key.
	KindBadSignature Kind = "bad-signature"
	// KindHead: the last line's SHA-256 is not VerifyOptions.ExpectHead.
	KindHead Kind = "head"
	// KindCount: the number of entries is not VerifyOptions.ExpectCount.
	KindCount Kind = "count"
	// KindNoAuditKey: signatures were to be checked against the record's
	// own audit key, but the record holds no usable audit-key create
	// entry (one that carries the public key and is signed by it).
	KindNoAuditKey Kind = "no-audit-key"
	// KindAuditKey: the audit key is not the one written down
	// (VerifyOptions.ExpectAuditKey).
	KindAuditKey Kind = "audit-key"
)

// Problem is one reason a record fails verification.
type Problem struct {
	// Entry is the 1-based number of the entry (its line in the file), or
	// 0 when the problem is with the record as a whole (KindHead, KindCount).
	Entry int
	Kind  Kind
	// Detail says what was found and what it means, for a person.
	Detail string
}

// String names the entry (or the record), the kind and the detail:
// "entry 4: chain: Prev is ...".
func (p Problem) String() string {
	if p.Entry == 0 {
		return fmt.Sprintf("record: %s: %s", p.Kind, p.Detail)
	}
	return fmt.Sprintf("entry %d: %s: %s", p.Entry, p.Kind, p.Detail)
}

// SignatureStatus is what verification found about an entry's signature.
type SignatureStatus string

const (
	// SignatureValid: signed by the given public key, and the signature verifies.
	SignatureValid SignatureStatus = "valid"
	// SignatureUnchecked: signed, but no public key was given to check it with.
	SignatureUnchecked SignatureStatus = "unchecked"
	// SignatureNone: not signed.
	SignatureNone SignatureStatus = "unsigned"
	// SignatureWrongKey: signed by another key than the one given.
	SignatureWrongKey SignatureStatus = "wrong-key"
	// SignatureInvalid: the signature does not verify under the given key.
	SignatureInvalid SignatureStatus = "invalid"
	// SignatureUnreadable: the line could not be read as an entry.
	SignatureUnreadable SignatureStatus = "unreadable"
)

// EntryResult is what verification found about one line.
type EntryResult struct {
	// Entry is the 1-based number of the entry: its line in the file.
	Entry int
	// Hash is what the next entry's Prev must be: the lowercase hex
	// SHA-256 of the entry's signed bytes (the line without its Signature
	// member) for an entry of Format, of the whole line without its
	// newline for FormatV2 and FormatV1 entries and for a line that could
	// not be read.
	Hash string
	// Parsed is the entry as read, or nil when the line could not be read.
	Parsed    *Entry
	Signature SignatureStatus
	// Problems are this entry's, in the order they were found; none when
	// the entry verifies.
	Problems []Problem
}

// AuditKey is an audit key a record's signatures were checked against.
type AuditKey struct {
	// PublicKeySha256 is the lowercase hex SHA-256 of its DER
	// SubjectPublicKeyInfo: the fingerprint on the paper script.
	PublicKeySha256 string
	// KeyId is its CKA_ID in the HSM, hex, when the record says.
	KeyId string `json:",omitempty"`
	// Source says where the key came from: "--public-key" (given by the
	// verifier), or "entry N" (the record's own audit-key create entry).
	Source string
}

// Report is the result of verifying a whole record.
type Report struct {
	// Count is the number of entries (lines) in the record.
	Count int
	// Head is the last entry's Hash (GenesisPrev for an empty record):
	// the value to write on the paper script, and the next entry's Prev.
	Head string
	// SignaturesChecked says whether signatures were checked: against a
	// public key given, or the record's own audit key. When false, only
	// the hash chain was checked (a chain-only check), which shows the
	// file is self-consistent and nothing about who wrote it.
	SignaturesChecked bool
	// AuditKeys are the keys the signatures were checked against.
	AuditKeys []AuditKey `json:",omitempty"`
	Entries   []EntryResult
	// Problems lists every problem: each entry's in file order, then those
	// of the record as a whole.
	Problems []Problem
}

// OK reports whether the record verified with no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// String is a transcript of the verification for a person: one line per
// entry, each problem under its entry, and the count and head.
func (r *Report) String() string {
	var b strings.Builder
	for _, e := range r.Entries {
		status := "ok"
		if len(e.Problems) > 0 {
			status = "FAILED"
		}
		what := ""
		if e.Parsed != nil {
			what = fmt.Sprintf(" seq %d %s %s %q %s", e.Parsed.Seq, e.Parsed.Time, e.Parsed.Command, e.Parsed.Step, e.Parsed.Outcome)
		}
		fmt.Fprintf(&b, "entry %d: %s (signature %s)%s\n", e.Entry, status, e.Signature, what)
		for _, p := range e.Problems {
			fmt.Fprintf(&b, "    %s: %s\n", p.Kind, p.Detail)
		}
	}
	for _, p := range r.Problems {
		if p.Entry == 0 {
			fmt.Fprintf(&b, "%s\n", p)
		}
	}
	fmt.Fprintf(&b, "%d entries, head %s\n", r.Count, r.Head)
	for _, k := range r.AuditKeys {
		if k.Source == SourceGiven {
			fmt.Fprintf(&b, "signatures checked against the audit key given with --public-key, SHA-256 %s\n", k.PublicKeySha256)
		} else {
			fmt.Fprintf(&b, "signatures checked against the record's own audit key (created in %s, CKA_ID %s), SHA-256 %s: compare it with the fingerprint on the paper script; anyone can make a record with a key of their own\n", k.Source, k.KeyId, k.PublicKeySha256)
		}
	}
	switch {
	case r.OK() && r.SignaturesChecked:
		b.WriteString("the record verifies\n")
	case r.OK():
		b.WriteString("the hash chain is intact; no signature was checked, so this does not show who wrote the record\n")
	default:
		fmt.Fprintf(&b, "the record does NOT verify: %d problems\n", len(r.Problems))
	}
	return b.String()
}

// ErrBroken is matched (errors.Is) by the error Verify returns for a record
// with problems.
var ErrBroken = errors.New("ceremony record does not verify")

// VerifyError is the error of a record with problems. Its message names the
// first problem; Problems has them all.
type VerifyError struct {
	Problems []Problem
}

// Error names the first problem and how many more there are.
func (e *VerifyError) Error() string {
	msg := fmt.Sprintf("%v: %s", ErrBroken, e.Problems[0])
	if n := len(e.Problems) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more problems)", n)
	}
	return msg
}

// Is makes errors.Is(err, ErrBroken) true.
func (e *VerifyError) Is(target error) bool { return target == ErrBroken }

// VerifyOptions says what to check a record against beyond itself.
type VerifyOptions struct {
	// PublicKey is the audit public key (an *ecdsa.PublicKey on P-256).
	// When set, every entry must be signed by it. When nil, only the chain
	// is checked and signatures are reported as unchecked.
	PublicKey crypto.PublicKey
	// ExpectHead, when set, is the head written down at the end of the
	// ceremony (hex; spaces and case are ignored). The record must end
	// with the entry of that Hash. It is the only way to notice whole
	// entries removed from the end, together with ExpectCount.
	ExpectHead string
	// ExpectCount, when more than 0, is the number of entries written
	// down at the end of the ceremony.
	ExpectCount int
	// OwnAuditKey, when PublicKey is nil, checks every signature against
	// the record's own audit key: the public key an "audit-key create"
	// entry carries (Outputs AuditPublicKey), in an entry signed by that
	// very key. The report names the key by fingerprint, which the
	// officers compare with the one on the paper script (or ExpectAuditKey
	// does). When neither PublicKey nor OwnAuditKey is set, only the hash
	// chain is checked.
	OwnAuditKey bool
	// ExpectAuditKey, when set, is the audit key fingerprint written down
	// at the end of the ceremony (hex; spaces, colons and case ignored):
	// the key signatures are checked against must be that one.
	ExpectAuditKey string
	// AllowUnsigned accepts entries that carry no signature from the
	// commands that never hold the HSM token (UnsignedCommands: the online
	// steps of an air-gapped ceremony, which have no HSM); an unsigned entry
	// of any other command is refused all the same, and signed entries must
	// still verify. Because unsigned entries at the end of a record could be
	// re-chained by anyone, AllowUnsigned needs ExpectHead when signatures
	// are checked: the head on the paper script anchors the tail.
	AllowUnsigned bool
}

// SourceGiven is AuditKey.Source for a key the verifier gave.
const SourceGiven = "--public-key"

// UnsignedCommands are the commands whose entries may be unsigned under
// VerifyOptions.AllowUnsigned: they never open the HSM token, so they have
// no audit key to sign with. Every other command (import, wrap, approve,
// audit-key create, ceremony run, renew, rotate, and any command this list
// does not know) holds the token and signs when an audit key is in use.
var UnsignedCommands = []string{"prepare", "upload", "delete-material", "record repair"}

// MaxLineBytes is the longest line a record may have.
const MaxLineBytes = 1 << 20

// Verify checks the record r with opts.PublicKey = pub; see VerifyWith.
func Verify(r io.Reader, pub crypto.PublicKey) (*Report, error) {
	return VerifyWith(r, VerifyOptions{PublicKey: pub})
}

// VerifyWith reads the whole record from r and checks every entry: its
// form, its Seq, its Prev against the line before it and, with a public
// key, its signature; then the record's count and head against opts. It
// returns the report and, when there is any problem, a *VerifyError
// (errors.Is ErrBroken) naming the first. Other errors (reading r, bad
// options, a line longer than MaxLineBytes) come with a nil report.
//
// Verification is of the file alone: whole entries removed from the end
// leave a valid record, which only ExpectHead and ExpectCount reveal.
func VerifyWith(r io.Reader, opts VerifyOptions) (*Report, error) {
	v := verifier{rep: &Report{Head: GenesisPrev}, prevHash: GenesisPrev, allowUnsigned: opts.AllowUnsigned}
	if opts.PublicKey != nil {
		pub, sum, err := auditPublicKey(opts.PublicKey)
		if err != nil {
			return nil, err
		}
		v.keys = map[string]ownKey{sum: {pub: pub, AuditKey: AuditKey{PublicKeySha256: sum, Source: SourceGiven}}}
		v.rep.SignaturesChecked = true
	} else if opts.OwnAuditKey {
		v.rep.SignaturesChecked = true
	}
	expectHead := strings.ToLower(strings.Join(strings.Fields(opts.ExpectHead), ""))
	if opts.ExpectHead != "" && !isHex(expectHead, sha256.Size) {
		return nil, fmt.Errorf("the expected head %q is not 64 hex digits", opts.ExpectHead)
	}
	expectKey := strings.ToLower(strings.NewReplacer(" ", "", ":", "", "\n", "", "\t", "").Replace(opts.ExpectAuditKey))
	if opts.ExpectAuditKey != "" && !isHex(expectKey, sha256.Size) {
		return nil, fmt.Errorf("the expected audit key fingerprint %q is not 64 hex digits", opts.ExpectAuditKey)
	}
	if opts.AllowUnsigned && v.rep.SignaturesChecked && expectHead == "" {
		return nil, errors.New("accepting unsigned entries needs the head written down at the end of the ceremony: unsigned entries at the end of a record can be rewritten and re-chained by anyone, and only the head shows it")
	}

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes+1)
	terminated := true
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			terminated = true
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			terminated = false
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		if len(sc.Bytes()) > MaxLineBytes {
			return nil, fmt.Errorf("entry %d is longer than %d bytes: this is not a kmsbridge ceremony record", v.rep.Count+1, MaxLineBytes)
		}
		v.line(sc.Bytes(), terminated)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("entry %d is longer than %d bytes: this is not a kmsbridge ceremony record", v.rep.Count+1, MaxLineBytes)
		}
		return nil, fmt.Errorf("reading the record: %w", err)
	}

	rep := v.rep
	if rep.SignaturesChecked {
		v.checkSignatures(opts.PublicKey == nil, expectKey)
	}
	if opts.ExpectCount > 0 && rep.Count != opts.ExpectCount {
		detail := fmt.Sprintf("the record has %d entries, but %d were written down: ", rep.Count, opts.ExpectCount)
		if rep.Count < opts.ExpectCount {
			detail += fmt.Sprintf("%d entries are missing from the end (the file was truncated?)", opts.ExpectCount-rep.Count)
		} else {
			detail += fmt.Sprintf("%d entries were added after the count was written down", rep.Count-opts.ExpectCount)
		}
		rep.Problems = append(rep.Problems, Problem{Kind: KindCount, Detail: detail})
	}
	if expectHead != "" && rep.Head != expectHead {
		detail := fmt.Sprintf("the last entry's hash is %s, but %s was written down: ", rep.Head, expectHead)
		if i := slices.IndexFunc(rep.Entries, func(e EntryResult) bool { return e.Hash == expectHead }); i >= 0 {
			detail += fmt.Sprintf("that is entry %d's, so entries %d to %d were added after it was written down", i+1, i+2, rep.Count)
		} else {
			detail += "no entry has it, so the end of the record was removed or changed"
		}
		rep.Problems = append(rep.Problems, Problem{Kind: KindHead, Detail: detail})
	}
	rep.Problems = append(rep.Problems, v.keyProblems...)
	if !rep.OK() {
		return rep, &VerifyError{Problems: rep.Problems}
	}
	return rep, nil
}

type verifier struct {
	rep *Report
	// keys are the audit keys signatures are checked against, by
	// fingerprint: the one given, or the record's own.
	keys map[string]ownKey
	// keyProblems are the record's problems with its audit key.
	keyProblems []Problem
	// allowUnsigned: see VerifyOptions.AllowUnsigned.
	allowUnsigned bool
	prevHash      string
	prevSeq       int64
	// seqUnknown is set after a line that could not be read: the next
	// entry's Seq has nothing to follow, and the chain alone judges it.
	seqUnknown bool
	// signed holds, by entry index, the SHA-256 of the bytes the entry's
	// signature covers, when they were cut from its canonical line
	// (signedFromLine); an entry without one has them re-serialised.
	signed map[int][sha256.Size]byte
	// chainsSigned: the previous entry was of Format, so entries of an
	// older format may no longer follow.
	chainsSigned bool
}

// entryMembers are the members every entry has; Signature is optional.
// Entries of every format but FormatV1 also have Tool.
var entryMembers = []string{"Version", "Seq", "Time", "Operator", "Host", "Command", "Step", "Inputs", "Outputs", "Token", "Outcome", "Error", "Prev"}

// line checks one line (without its newline) and adds its result.
func (v *verifier) line(line []byte, terminated bool) {
	v.rep.Count++
	n := v.rep.Count
	sum := sha256.Sum256(line)
	res := EntryResult{Entry: n, Hash: hex.EncodeToString(sum[:]), Signature: SignatureUnreadable}
	add := func(k Kind, format string, args ...any) {
		res.Problems = append(res.Problems, Problem{Entry: n, Kind: k, Detail: fmt.Sprintf(format, args...)})
	}
	defer func() {
		v.rep.Entries = append(v.rep.Entries, res)
		v.rep.Problems = append(v.rep.Problems, res.Problems...)
		v.rep.Head = res.Hash
		v.prevHash = res.Hash
	}()

	if !terminated {
		add(KindTruncated, "the last line has no newline at its end: the record was cut short in the middle of an entry, or a write was interrupted")
	}
	e, rawSig, err := parseEntry(line)
	if err != nil {
		v.seqUnknown = true
		if terminated { // a cut-short line is reported as truncated alone
			add(KindMalformed, "%v", err)
		}
		return
	}
	res.Parsed = e
	if e.Version != Format && e.Version != FormatV2 && e.Version != FormatV1 {
		v.seqUnknown = true
		add(KindVersion, "Version is %q; this kmsbridge reads only %q, %q and %q: use a kmsbridge that knows the newer format", e.Version, Format, FormatV2, FormatV1)
		return
	}
	// signedSum is SHA-256 of the entry's signed bytes, when known.
	var signedSum *[sha256.Size]byte
	if canon, err := e.line(); err != nil || !bytes.Equal(canon, line) {
		add(KindNotCanonical, "the line is not in the canonical form kmsbridge writes, so it was changed by something other than kmsbridge")
	} else if e.Signature == nil {
		signedSum = &sum // an unsigned canonical line is its own signed bytes
	} else if signed, ok := signedFromLine(line, rawSig); ok {
		d := sha256.Sum256(signed)
		signedSum = &d
		if v.signed == nil {
			v.signed = map[int][sha256.Size]byte{}
		}
		v.signed[n-1] = d
	}
	if chainsSignedBytes(e.Version) {
		// The next entry's Prev names this entry's signed bytes.
		if signedSum == nil {
			if sb, err := e.SignedBytes(); err == nil {
				d := sha256.Sum256(sb)
				signedSum = &d
			}
		}
		if signedSum != nil {
			res.Hash = hex.EncodeToString(signedSum[:])
		}
	}
	if err := e.check(); err != nil {
		add(KindInvalid, "%v", err)
	}
	if v.chainsSigned && !chainsSignedBytes(e.Version) {
		add(KindVersion, "Version is %q after an entry of %q: kmsbridge never appends an older format after a newer one, so the entry was written by something else", e.Version, Format)
	}
	v.chainsSigned = v.chainsSigned || chainsSignedBytes(e.Version)

	switch want := v.prevSeq + 1; {
	case e.Seq == want || v.seqUnknown:
	case n == 1:
		add(KindSeq, "the first entry has Seq %d, but a record starts at 1: the entries before it are missing", e.Seq)
	case e.Seq > want:
		add(KindSeq, "Seq is %d but the previous entry's is %d: the entries with Seq %d to %d are missing (deleted?), or entries were reordered", e.Seq, v.prevSeq, want, e.Seq-1)
	default:
		add(KindSeq, "Seq is %d but the previous entry's is %d: entries were reordered or repeated", e.Seq, v.prevSeq)
	}
	v.prevSeq, v.seqUnknown = e.Seq, false

	if e.Prev != v.prevHash {
		if n == 1 {
			add(KindChain, "Prev is %s, not the 64 zeros of a first entry: the entries before it are missing", e.Prev)
		} else {
			add(KindChain, "Prev is %s but entry %d's hash is %s: entry %d was changed, removed, inserted or moved after this entry was written (or this entry's Prev was changed)", e.Prev, n-1, v.prevHash, n-1)
		}
	}

	// Signatures are checked once the whole record is read
	// (checkSignatures): the record's own audit key may be anywhere in it.
	res.Signature = SignatureUnchecked
	if e.Signature == nil {
		res.Signature = SignatureNone
	}
}

// ownKey is an audit key signatures are checked against.
type ownKey struct {
	AuditKey
	pub *ecdsa.PublicKey
}

// checkSignatures checks every entry's signature against v.keys, after
// finding the record's own audit keys when own is set, then rebuilds the
// report's problems in file order.
func (v *verifier) checkSignatures(own bool, expectKey string) {
	rep := v.rep
	var recordProblems []Problem
	if own {
		v.keys = v.ownKeys()
		if len(v.keys) == 0 {
			recordProblems = append(recordProblems, Problem{Kind: KindNoAuditKey, Detail: "no --public-key was given, and the record holds no audit key of its own (an audit-key create entry that carries AuditPublicKey and is signed by that key), so no signature can be checked: give the ceremony's audit public key with --public-key AUDIT.pem, or check the hash chain alone with --chain-only"})
		}
	}
	given := ""
	for fp := range v.keys {
		given = fp
	}
	for i := range rep.Entries {
		res := &rep.Entries[i]
		e := res.Parsed
		if e == nil || res.Signature == SignatureUnreadable {
			continue
		}
		add := func(k Kind, format string, args ...any) {
			res.Problems = append(res.Problems, Problem{Entry: res.Entry, Kind: k, Detail: fmt.Sprintf(format, args...)})
		}
		s := e.Signature
		k, known := ownKey{}, false
		if s != nil {
			k, known = v.keys[s.PublicKeySha256]
		}
		switch {
		case len(v.keys) == 0:
			// KindNoAuditKey says why nothing was checked.
		case s == nil && v.allowUnsigned && slices.Contains(UnsignedCommands, e.Command):
			res.Signature = SignatureNone
		case s == nil && v.allowUnsigned:
			res.Signature = SignatureNone
			add(KindUnsigned, "the entry is not signed, and %q is a command that holds the HSM token and signs its entries when an audit key is in use: --allow-unsigned accepts unsigned entries only from %s; its signature was removed, or the entry was written by something else", e.Command, strings.Join(UnsignedCommands, ", "))
		case s == nil:
			res.Signature = SignatureNone
			add(KindUnsigned, "the entry is not signed, but the record is checked against an audit key: it was written without the audit key, or its signature was removed")
		case !known && own:
			res.Signature = SignatureWrongKey
			add(KindWrongKey, "signed by the key with public key SHA-256 %s (KeyId %s), which is not an audit key this record creates", s.PublicKeySha256, s.KeyId)
		case !known:
			res.Signature = SignatureWrongKey
			add(KindWrongKey, "signed by the key with public key SHA-256 %s (KeyId %s), not by the given audit key (SHA-256 %s)", s.PublicKeySha256, s.KeyId, given)
		case s.Algorithm != AlgorithmECDSAP256SHA256:
			res.Signature = SignatureInvalid // KindInvalid says why
		case v.verifyEntry(k.pub, i, e):
			res.Signature = SignatureValid
		default:
			res.Signature = SignatureInvalid
			add(KindBadSignature, "the signature does not verify under the audit key: the entry was changed after it was signed, or its signature was")
		}
	}
	for _, k := range v.keys {
		rep.AuditKeys = append(rep.AuditKeys, k.AuditKey)
		if expectKey != "" && k.PublicKeySha256 != expectKey {
			recordProblems = append(recordProblems, Problem{Kind: KindAuditKey, Detail: fmt.Sprintf("the signatures were checked against the audit key with SHA-256 %s (%s), but %s was written down: this is not the ceremony's audit key", k.PublicKeySha256, k.Source, expectKey)})
		}
	}
	slices.SortFunc(rep.AuditKeys, func(a, b AuditKey) int { return strings.Compare(a.Source, b.Source) })
	rep.Problems = nil
	for _, e := range rep.Entries {
		rep.Problems = append(rep.Problems, e.Problems...)
	}
	// After the count and head's: those name what is wrong more exactly.
	v.keyProblems = recordProblems
}

// ownKeys finds the record's own audit keys: each "audit-key create"
// entry that succeeded, carries the new key's public key (AuditPublicKey,
// base64 DER) with its fingerprint (AuditPublicKeySha256), and is signed
// by that key, as audit-key create signs the entry of its key's birth.
func (v *verifier) ownKeys() map[string]ownKey {
	keys := map[string]ownKey{}
	for i := range v.rep.Entries {
		res := &v.rep.Entries[i]
		e := res.Parsed
		if e == nil || e.Command != "audit-key create" || e.Outcome != OutcomeOK || e.Outputs["AuditPublicKey"] == "" {
			continue
		}
		der, err := base64.StdEncoding.Strict().DecodeString(e.Outputs["AuditPublicKey"])
		if err != nil {
			continue
		}
		pk, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			continue
		}
		pub, fp, err := auditPublicKey(pk)
		if err != nil || fp != e.Outputs["AuditPublicKeySha256"] || e.Signature == nil || e.Signature.PublicKeySha256 != fp || !v.verifyEntry(pub, i, e) {
			continue // not a key the record vouches for; its signature check says why
		}
		if _, ok := keys[fp]; !ok {
			keys[fp] = ownKey{pub: pub, AuditKey: AuditKey{PublicKeySha256: fp, KeyId: e.Outputs["AuditKeyId"], Source: fmt.Sprintf("entry %d", res.Entry)}}
		}
	}
	return keys
}

// parseEntry reads one line as an entry, strictly: every member present,
// no unknown member at any level, each of its type. It also returns the
// Signature member's value as it is in the line (nil when absent).
func parseEntry(line []byte) (*Entry, json.RawMessage, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil {
		return nil, nil, fmt.Errorf("not a JSON object: %v", err)
	}
	want := append(slices.Clone(entryMembers), "Tool")
	var version string
	if json.Unmarshal(members["Version"], &version) == nil && version == FormatV1 {
		want = entryMembers
	}
	for name := range members {
		if name != "Signature" && !slices.Contains(want, name) {
			return nil, nil, fmt.Errorf("unknown member %q", name)
		}
	}
	for _, name := range want {
		if _, ok := members[name]; !ok {
			return nil, nil, fmt.Errorf("member %q is missing", name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var e Entry
	if err := dec.Decode(&e); err != nil {
		return nil, nil, fmt.Errorf("not an entry of %s: %v", Format, err)
	}
	return &e, members["Signature"], nil
}

// signedFromLine cuts the bytes a signature covers (Entry.SignedBytes: the
// canonical JSON of the entry without its Signature member) out of line,
// which must already be known to be the entry's canonical JSON, instead of
// serialising the entry a second time: in canonical JSON the members are
// sorted, Signature is never the first (Command sorts before it), so the
// entry without it is the line without ',"Signature":' and the member's
// value (rawSig, as parsed from this line). The cut is used only when that
// text occurs exactly once in the line: no other object of an entry can
// hold an object member named Signature (Inputs and Outputs hold strings,
// Token and Tool have no such member), so it always does; should it not,
// the caller serialises instead. TestSignedFromLineIsSignedBytes checks
// the two agree.
func signedFromLine(line []byte, rawSig json.RawMessage) ([]byte, bool) {
	if len(rawSig) == 0 || rawSig[0] != '{' {
		return nil, false
	}
	needle := append([]byte(`,"Signature":`), rawSig...)
	i := bytes.Index(line, needle)
	if i < 0 || bytes.Contains(line[i+1:], needle) {
		return nil, false
	}
	out := make([]byte, 0, len(line)-len(needle))
	out = append(out, line[:i]...)
	return append(out, line[i+len(needle):]...), true
}

// verifyEntry checks the signature of the i-th entry (0-based), e, with pub.
func (v *verifier) verifyEntry(pub *ecdsa.PublicKey, i int, e *Entry) bool {
	if digest, ok := v.signed[i]; ok {
		return verifyDigest(pub, e, digest)
	}
	return verifySignature(pub, e)
}

// verifySignature checks e's signature with pub over SHA-256 of its signed bytes.
func verifySignature(pub *ecdsa.PublicKey, e *Entry) bool {
	sig, err := base64.StdEncoding.Strict().DecodeString(e.Signature.Value)
	if err != nil {
		return false
	}
	signed, err := e.SignedBytes()
	if err != nil {
		return false
	}
	digest := sha256.Sum256(signed)
	return ecdsa.VerifyASN1(pub, digest[:], sig)
}

// verifyDigest checks e's signature with pub over digest, the SHA-256 of
// its signed bytes.
func verifyDigest(pub *ecdsa.PublicKey, e *Entry, digest [sha256.Size]byte) bool {
	sig, err := base64.StdEncoding.Strict().DecodeString(e.Signature.Value)
	if err != nil {
		return false
	}
	return ecdsa.VerifyASN1(pub, digest[:], sig)
}

// auditPublicKey checks that pub can be an audit key and returns it with
// the hex SHA-256 of its DER SubjectPublicKeyInfo.
func auditPublicKey(pub crypto.PublicKey) (*ecdsa.PublicKey, string, error) {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, "", fmt.Errorf("an audit key is an ECDSA P-256 key, not %T", pub)
	}
	sum, err := PublicKeySHA256(ec)
	return ec, sum, err
}

// PublicKeySHA256 returns the lowercase hex SHA-256 of pub's DER
// SubjectPublicKeyInfo: the audit key's fingerprint as entries carry it in
// Signature.PublicKeySha256, and as officers compare it on paper.
func PublicKeySHA256(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("audit public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// ParsePublicKeyPEM reads an audit public key from one PEM "PUBLIC KEY"
// block (a DER SubjectPublicKeyInfo), as `kmsbridge audit-key create`
// writes it. It fails unless the key is ECDSA P-256 and nothing but
// whitespace follows the block.
func ParsePublicKeyPEM(data []byte) (*ecdsa.PublicKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block: the audit public key is a PEM \"PUBLIC KEY\" block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("the PEM block is %q, want \"PUBLIC KEY\"", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block: give only the audit public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the PEM block is not a public key: %w", err)
	}
	ec, _, err := auditPublicKey(pub)
	return ec, err
}
