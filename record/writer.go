package record

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
	"github.com/kmsbridge/kmsbridge/internal/groupcommit"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// ErrLocked means another process has the record open for appending.
var ErrLocked = errors.New("the ceremony record is open in another kmsbridge")

// Writer appends entries to one record. It holds the file open, locked
// against other writers, from Open to Close. It is safe for concurrent use;
// entries are written in the order Append is called.
type Writer struct {
	// Now is the clock entries are timed by; Open sets time.Now.
	Now func() time.Time
	// Operator is the Operator of an entry that names none; Open sets the
	// operating-system user. Set Operator, Host and Tool, if at all,
	// before the first Append: appenders read them without the lock.
	Operator string
	// Host is the Host of an entry that names none; Open sets os.Hostname.
	Host string
	// Tool is the Tool of every entry; Open sets the running build's
	// version and commit (internal/buildinfo).
	Tool ToolInfo

	mu     sync.Mutex
	path   string
	f      *os.File
	signer crypto.Signer
	pub    *ecdsa.PublicKey
	keyID  string
	pubSHA string
	seq    int64
	head   string
	// failed is set when a write or fsync failed: the file may end in a
	// partial line, so nothing more is appended.
	failed error
	// commit shares fsyncs among concurrent appenders.
	commit *groupcommit.Syncer
	// syncHook, when set (tests), is called instead of the file's Sync.
	syncHook func(*os.File) error
}

// Open opens the record at path for appending, creating it (mode 0600) when
// it does not exist; it never truncates or rewrites. It reads and verifies
// the existing entries (the chain, not signatures, which may be by earlier
// audit keys) and refuses a record that does not verify, with a
// *VerifyError naming the first problem. It fails with ErrLocked when
// another process has the record open.
//
// With a signer, every entry is signed: signer must be an ECDSA P-256
// crypto.Signer (an audit key in the HSM) and signerKeyID its CKA_ID. With
// a nil signer entries are unsigned and signerKeyID is ignored.
func Open(path string, signer crypto.Signer, signerKeyID []byte) (*Writer, error) {
	build := buildinfo.Get()
	w := &Writer{path: path, head: GenesisPrev, Now: time.Now, Operator: osUser(), Tool: ToolInfo{Version: build.Version, Commit: build.Commit}}
	if signer != nil {
		if len(signerKeyID) == 0 {
			return nil, errors.New("the audit key has no CKA_ID: entries must name the key that signed them")
		}
		pub, sum, err := auditPublicKey(signer.Public())
		if err != nil {
			return nil, err
		}
		w.signer, w.pub, w.pubSHA, w.keyID = signer, pub, sum, hex.EncodeToString(signerKeyID)
	}
	w.Host, _ = os.Hostname()

	created := true
	f, err := safefile.OpenFile("ceremony record", path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		created = false
		f, err = safefile.OpenFile("ceremony record", path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("ceremony record: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() > safefile.MaxRecord {
		err = fmt.Errorf("is larger than %d MiB, far more than a ceremony record holds: check it is the right file, and start a new record for new ceremonies", safefile.MaxRecord>>20)
	}
	if err == nil {
		err = lockFile(f)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ceremony record %s: %w", path, err)
	}
	if created {
		// Make the new file's name durable, not only its contents.
		if err := safefile.SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("ceremony record %s: %w", path, err)
		}
	}
	rep, err := VerifyWith(io.NewSectionReader(f, 0, st.Size()), VerifyOptions{})
	if err != nil {
		f.Close()
		var ve *VerifyError
		if errors.As(err, &ve) && len(ve.Problems) == 1 && ve.Problems[0].Kind == KindTruncated {
			return nil, fmt.Errorf("refusing to append to the ceremony record %s: its last line is torn (a write was cut short, e.g. by a crash); run `kmsbridge record repair %s`, which keeps the torn bytes as evidence and records that it did: %w", path, path, err)
		}
		return nil, fmt.Errorf("refusing to append to the ceremony record %s, check it with `kmsbridge record verify`: %w", path, err)
	}
	if rep.Count > 0 {
		w.seq = rep.Entries[rep.Count-1].Parsed.Seq
	}
	w.head = rep.Head
	w.f = f
	return w, nil
}

// osUser is the name of the user running the process, or "" when unknown.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, v := range []string{"USER", "LOGNAME", "USERNAME"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	return ""
}

// Append writes e as the next entry and returns it as written. It fills
// Version, Seq, Time (from Now, in UTC), Tool, Prev and, with a signer, Signature,
// overwriting whatever e had there; an empty Operator or Host is taken from
// the Writer. It refuses, writing nothing, an entry the format does not
// allow: no Command, an Outcome other than "ok" or "error", an Error that
// does not match the Outcome, invalid UTF-8, or an Inputs or Outputs name
// that names a secret (see CheckName). A signature is checked against the
// audit public key before the entry is written.
//
// The entry is written with one write(2) and is durable (fsync'd) before
// Append returns; appends from several goroutines at once share fsyncs,
// and their entries are chained in the order they were written. If the
// write or fsync fails, the record may end in a partial line, and this
// Writer refuses every later Append.
func (w *Writer) Append(e Entry) (Entry, error) {
	e, draft, err := w.draft(e)
	if err != nil {
		return Entry{}, err
	}
	w.mu.Lock()
	e, line, err := w.prepare(e, draft)
	if err != nil {
		w.mu.Unlock()
		return Entry{}, err
	}
	return w.write(e, line)
}

// draftTime stands for an entry's Time in its draft: a time of the
// format's length, replaced under the lock.
const draftTime = "0000-00-00T00:00:00.000Z"

// draft fills and checks what of e does not depend on the entries before
// it, and returns with it e's signed bytes with a placeholder Seq (0), Time
// (draftTime) and Prev (GenesisPrev), which prepare puts in place. It runs
// before the Writer's lock is taken, so that appenders serialise their
// entries at once; only what chains them waits in turn.
func (w *Writer) draft(e Entry) (Entry, []byte, error) {
	e.Inputs = cloneMap(e.Inputs)
	e.Outputs = cloneMap(e.Outputs)
	if e.Token != nil {
		t := *e.Token
		e.Token = &t
	}
	if e.Operator == "" {
		e.Operator = w.Operator
	}
	if e.Host == "" {
		e.Host = w.Host
	}
	e.Version = Format
	tool := w.Tool
	e.Tool = &tool
	e.Seq, e.Time, e.Prev, e.Signature = 0, draftTime, GenesisPrev, nil
	// What check asks of the rest of the entry, the content included;
	// prepare checks what it adds (checkSigned).
	probe := e
	probe.Seq, probe.Time = 1, "2026-01-01T00:00:00.000Z"
	if err := probe.check(); err != nil {
		return Entry{}, nil, fmt.Errorf("ceremony record entry not written: %w", err)
	}
	signed, err := e.SignedBytes()
	if err != nil {
		return Entry{}, nil, fmt.Errorf("ceremony record entry not written: %w", err)
	}
	return e, signed, nil
}

// prepare makes e, drafted with its signed bytes draft, the next entry:
// its Seq, Time and Prev, its signature, and its line. Callers hold w.mu.
func (w *Writer) prepare(e Entry, draft []byte) (Entry, []byte, error) {
	if w.failed != nil {
		return Entry{}, nil, fmt.Errorf("the ceremony record %s could not be written earlier (%v), so nothing more is appended: check it with `kmsbridge record verify`", w.path, w.failed)
	}
	if w.f == nil {
		return Entry{}, nil, fmt.Errorf("the ceremony record %s is closed", w.path)
	}
	e.Seq = w.seq + 1
	e.Time = w.Now().UTC().Format(TimeFormat)
	e.Prev = w.head
	// The line is the signed bytes, with the signature put in its place
	// when there is one: the entry is serialised once, in draft, outside
	// this section every appender waits for.
	line, err := chained(draft, e.Seq, e.Time, e.Prev)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
	}
	if w.signer != nil {
		sig, err := w.sign(line)
		if err != nil {
			return Entry{}, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
		}
		e.Signature = sig
		if line, err = withSignature(line, sig); err != nil {
			return Entry{}, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
		}
	}
	if err := e.checkSigned(); err != nil {
		return Entry{}, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
	}
	if len(line) > MaxLineBytes {
		return Entry{}, nil, fmt.Errorf("ceremony record entry %d not written: it is %d bytes long, more than %d", e.Seq, len(line), MaxLineBytes)
	}
	return e, line, nil
}

// write writes e's line, chains the next entry to it and lets go of w.mu
// (which the caller holds), then waits for an fsync that began after the
// write (internal/groupcommit): entries of concurrent appenders share
// fsyncs, and none returns before its own line is durable.
func (w *Writer) write(e Entry, line []byte) (Entry, error) {
	if _, err := w.f.Write(append(line, '\n')); err != nil {
		w.failed = err
		w.mu.Unlock()
		return Entry{}, fmt.Errorf("ceremony record %s: writing entry %d: %w", w.path, e.Seq, err)
	}
	// The next entry chains to this line whether or not this one's fsync
	// has returned: the chain is the file's order, fixed here under w.mu.
	sum := sha256.Sum256(line)
	w.seq, w.head = e.Seq, hex.EncodeToString(sum[:])
	if w.commit == nil {
		f, hook := w.f, w.syncHook
		w.commit = groupcommit.New(func() error {
			if hook != nil {
				return hook(f)
			}
			return f.Sync()
		})
	}
	ticket := w.commit.Wrote()
	w.mu.Unlock()
	if err := w.commit.Wait(ticket); err != nil {
		w.mu.Lock()
		if w.failed == nil {
			w.failed = err
		}
		w.mu.Unlock()
		return Entry{}, fmt.Errorf("ceremony record %s: fsync after entry %d: %w", w.path, e.Seq, err)
	}
	return e, nil
}

// sign signs an entry's signed bytes with the audit key and checks the
// signature under its public key, so a faulty token cannot put a bad
// signature on the record.
func (w *Writer) sign(signed []byte) (*Signature, error) {
	digest := sha256.Sum256(signed)
	der, err := w.signer.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing with the audit key: %w", err)
	}
	if !ecdsa.VerifyASN1(w.pub, digest[:], der) {
		return nil, errors.New("the audit key's signature does not verify under its own public key: the token or signer is faulty")
	}
	return &Signature{
		Algorithm:       AlgorithmECDSAP256SHA256,
		KeyId:           w.keyID,
		PublicKeySha256: w.pubSHA,
		Value:           base64.StdEncoding.EncodeToString(der),
	}, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// Head is the lowercase hex SHA-256 of the last entry's line (GenesisPrev
// for an empty record): what the officers write on the paper script, with
// Count, at the end of the ceremony.
func (w *Writer) Head() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.head
}

// Count is the number of entries in the record, which is the Seq of the
// last one.
func (w *Writer) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int(w.seq)
}

// Close releases the record. Entries are already on disk; Close is safe to
// call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}
