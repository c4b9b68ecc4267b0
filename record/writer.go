package record

import (
	"bytes"
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
//
// Concurrent appends overlap everything but what orders them: an entry's
// Seq, Time and Prev are fixed under the Writer's lock (Prev is the hash of
// the previous entry's signed bytes, known as soon as that entry is
// chained, before it is signed), the audit key signs outside the lock, on a
// session of its own per signature, and the lines are written in Seq
// order: whichever appender finds the next line signed writes it and every
// signed line after it (one write(2) a line, so a kill tears at most the
// line being written), and the batch is made durable with
// one fsync, shared with the appenders around it (internal/groupcommit).
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
	// seq and head are the Seq and hash of the last entry chained (given
	// its Seq and Prev), which the next entry follows; signing and writing
	// it may still be under way.
	seq  int64
	head string
	// wseq and whead are the Seq and hash of the last entry written.
	wseq  int64
	whead string
	// tickets counts the entries chained; next is the ticket of the entry
	// whose line is written next; slots holds the entries chained and not
	// yet written, by ticket; turn is signalled when lines are written.
	tickets, next uint64
	slots         map[uint64]*slot
	turn          *sync.Cond
	// failed is set when a write or fsync failed: the file may end in a
	// partial line, so nothing more is appended.
	failed error
	// commit shares fsyncs among concurrent appenders.
	commit *groupcommit.Syncer
	// syncHook, when set (tests), is called instead of the file's Sync.
	syncHook func(*os.File) error
	// writes counts the write(2) calls made, for tests.
	writes int
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
	w := &Writer{path: path, head: GenesisPrev, whead: GenesisPrev, next: 1, Now: time.Now, Operator: osUser(), Tool: ToolInfo{Version: build.Version, Commit: build.Commit}}
	w.turn = sync.NewCond(&w.mu)
	w.slots = map[uint64]*slot{}
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
	w.wseq, w.whead = w.seq, w.head
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
// The entry is durable (fsync'd) before Append returns; appends from
// several goroutines at once are signed at the same time, their lines are
// written in the order they were chained (several by one appender) and
// share fsyncs. If a write or fsync fails, the record may end in a partial
// line, and this Writer refuses every later Append. If an entry cannot be
// signed, it is not written, and the entries chained after it are chained
// again (and signed again) to the entry before it in their turn, so the
// record on disk never has a gap.
func (w *Writer) Append(e Entry) (Entry, error) {
	sl, err := w.write(e)
	if err != nil {
		return Entry{}, err
	}
	if err := w.await(sl.synced); err != nil {
		return Entry{}, fmt.Errorf("ceremony record %s: fsync after entry %d: %w", w.path, sl.e.Seq, err)
	}
	return sl.e, nil
}

// AppendWritten is Append without the wait for durability: it returns
// once e's line is written to the file (so a killed process keeps it), and
// the fsync that makes it durable (so a power cut keeps it) is awaited by
// the next Append, Sync or Close, of this or any other appender: every
// fsync covers every line written before it. It is for entries that
// announce no change, such as a step's outcome, which must be durable
// only before the next change (whose intent is appended with Append) or
// before the outcome is reported to the user (Sync first); see "Durable
// when it must be" in record/doc.go. A failed fsync surfaces at that next
// wait, and every later append fails.
func (w *Writer) AppendWritten(e Entry) (Entry, error) {
	sl, err := w.write(e)
	if err != nil {
		return Entry{}, err
	}
	return sl.e, nil
}

// Sync returns once every entry written so far is durable: the wait an
// AppendWritten left out, for all of them at once. It fails, and every
// later append fails, if an fsync failed.
func (w *Writer) Sync() error {
	w.mu.Lock()
	commit := w.commit
	if commit == nil { // nothing written yet
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	if err := w.await(commit.Latest()); err != nil {
		return fmt.Errorf("ceremony record %s: fsync: %w", w.path, err)
	}
	return nil
}

// await waits for the fsync covering ticket (0: nothing written) and keeps
// its failure, after which nothing more is appended.
func (w *Writer) await(ticket uint64) error {
	if ticket == 0 {
		return nil
	}
	w.mu.Lock()
	commit := w.commit
	w.mu.Unlock()
	if err := commit.Wait(ticket); err != nil {
		w.mu.Lock()
		if w.failed == nil {
			w.failed = err
		}
		w.mu.Unlock()
		return err
	}
	return nil
}

// write chains, signs and writes e (see Append) and returns its slot once
// its line is in the file, with the group commit ticket that covers it.
func (w *Writer) write(e Entry) (*slot, error) {
	e, draft, err := w.draft(e)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	e, signed, err := w.chain(e, draft, w.seq+1, w.Now().UTC().Format(TimeFormat), w.head)
	if err != nil {
		w.mu.Unlock()
		return nil, err
	}
	w.tickets++
	ticket := w.tickets
	sl := &slot{e: e, draft: draft, hash: hashHex(signed)}
	w.slots[ticket] = sl
	w.seq, w.head = e.Seq, sl.hash
	w.mu.Unlock()

	// Signed beside the other appenders' entries: nothing about the
	// entries before this one is still to come but their signatures,
	// which this entry's signed bytes do not include.
	line, sig, err := w.finish(e, signed)

	w.mu.Lock()
	sl.line, sl.e.Signature, sl.err, sl.ready = line, sig, err, true
	w.flush()
	for !sl.done {
		if sl.rechain && w.next == ticket {
			w.rechain(sl)
			continue
		}
		w.turn.Wait()
	}
	if sl.err != nil {
		w.mu.Unlock()
		return nil, sl.err
	}
	w.mu.Unlock()
	return sl, nil
}

// slot is an entry chained and not yet written.
type slot struct {
	// e is the entry as chained, with its signature once signed.
	e     Entry
	draft []byte
	// hash is the entry's hash (of its signed bytes); line is what is
	// written, once signed; err is why it is not written.
	hash string
	line []byte
	err  error
	// ready: signed (or failed); rechain: an entry before it was not
	// written, so it must be chained and signed again (by its appender,
	// in its turn); done: written (durable once synced is) or given up.
	ready, rechain, done bool
	synced               uint64
}

// flush writes every line that is ready from the next one on, in ticket
// order, one write(2) a line (writeLines), and hands them to one group
// commit; an entry
// whose signature failed is passed over, and the entries after it wait
// for their appenders to chain them again. Callers hold w.mu.
func (w *Writer) flush() {
	var batch []byte
	var written []*slot
	seq, head := w.wseq, w.whead
	next := w.next
	for ; ; next++ {
		sl := w.slots[next]
		if sl == nil || !sl.ready {
			break
		}
		if sl.err == nil {
			sl.err = w.usable()
		}
		if sl.err != nil {
			sl.done = true
			delete(w.slots, next)
			continue
		}
		if sl.e.Seq != seq+1 || sl.e.Prev != head {
			sl.ready, sl.rechain = false, true
			break
		}
		batch = append(append(batch, sl.line...), '\n')
		written = append(written, sl)
		seq, head = sl.e.Seq, sl.hash
		delete(w.slots, next)
	}
	if len(written) > 0 {
		w.writes++
		if err := writeLines(w.f, batch); err != nil {
			w.failed = err
			for _, sl := range written {
				sl.err = fmt.Errorf("ceremony record %s: writing entry %d: %w", w.path, sl.e.Seq, err)
			}
		} else {
			w.wseq, w.whead = seq, head
			if w.commit == nil {
				f, hook := w.f, w.syncHook
				w.commit = groupcommit.New(func() error {
					if hook != nil {
						return hook(f)
					}
					return f.Sync()
				})
			}
			synced := w.commit.Wrote()
			for _, sl := range written {
				sl.synced = synced
			}
		}
		for _, sl := range written {
			sl.done = true
		}
	}
	w.next = next
	if next > w.tickets {
		// Nothing is chained beyond what is written: the next entry
		// follows the last one written (the same, unless one failed).
		w.seq, w.head = w.wseq, w.whead
	}
	w.turn.Broadcast()
}

// rechain chains sl, whose turn it is, again to the last entry written,
// because an entry before it was not written, signs it again, and writes
// what is ready. While it signs, sl's turn is kept (nothing after it is
// written) but w.mu is not. Callers hold w.mu.
func (w *Writer) rechain(sl *slot) {
	sl.rechain = false
	e := sl.e
	e.Seq, e.Prev, e.Signature = w.wseq+1, w.whead, nil
	w.mu.Unlock()
	signed, err := chained(sl.draft, e.Seq, e.Time, e.Prev)
	var line []byte
	var sig *Signature
	if err == nil {
		line, sig, err = w.finish(e, signed)
	}
	w.mu.Lock()
	e.Signature = sig
	sl.e, sl.line, sl.err, sl.ready = e, line, err, true
	if err == nil {
		sl.hash = hashHex(signed)
	}
	w.flush()
}

// usable returns why nothing more may be appended, or nil. Callers hold w.mu.
func (w *Writer) usable() error {
	if w.failed != nil {
		return fmt.Errorf("the ceremony record %s could not be written earlier (%v), so nothing more is appended: check it with `kmsbridge record verify`", w.path, w.failed)
	}
	if w.f == nil {
		return fmt.Errorf("the ceremony record %s is closed", w.path)
	}
	return nil
}

// draftTime stands for an entry's Time in its draft: a time of the
// format's length, replaced under the lock.
const draftTime = "0000-00-00T00:00:00.000Z"

// draft fills and checks what of e does not depend on the entries before
// it, and returns with it e's signed bytes with a placeholder Seq (0), Time
// (draftTime) and Prev (GenesisPrev), which chain puts in place. It runs
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
	// chain and finish check what they add (checkSigned).
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

// chain makes e, drafted with its signed bytes draft, the entry of Seq seq
// at time t after the entry whose hash is prev, and returns it with its
// signed bytes. Callers hold w.mu.
func (w *Writer) chain(e Entry, draft []byte, seq int64, t, prev string) (Entry, []byte, error) {
	if err := w.usable(); err != nil {
		return Entry{}, nil, err
	}
	e.Seq, e.Time, e.Prev = seq, t, prev
	// The entry is serialised once, in draft, outside the lock every
	// appender waits for; here its chain is put in place.
	signed, err := chained(draft, e.Seq, e.Time, e.Prev)
	if err != nil {
		return Entry{}, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
	}
	return e, signed, nil
}

// finish signs e's signed bytes, when the Writer has a signer, and returns
// the line to write (the signed bytes with the signature in its place) and
// the signature. It runs outside w.mu.
func (w *Writer) finish(e Entry, signed []byte) ([]byte, *Signature, error) {
	line := signed
	if w.signer != nil {
		sig, err := w.sign(signed)
		if err != nil {
			return nil, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
		}
		e.Signature = sig
		if line, err = withSignature(signed, sig); err != nil {
			return nil, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
		}
	}
	if err := e.checkSigned(); err != nil {
		return nil, nil, fmt.Errorf("ceremony record entry %d not written: %w", e.Seq, err)
	}
	if len(line) > MaxLineBytes {
		return nil, nil, fmt.Errorf("ceremony record entry %d not written: it is %d bytes long, more than %d", e.Seq, len(line), MaxLineBytes)
	}
	return line, e.Signature, nil
}

// hashHex is the lowercase hex SHA-256 of b: an entry's hash, from its
// signed bytes.
func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
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

// Head is the hash of the last entry written (Report.Head: SHA-256 of its
// signed bytes; GenesisPrev for an empty record): what the officers write
// on the paper script, with Count, at the end of the ceremony.
func (w *Writer) Head() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.whead
}

// Count is the number of entries in the record, which is the Seq of the
// last one written.
func (w *Writer) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int(w.wseq)
}

// Close makes every entry written durable (Sync) and releases the record.
// It is safe to call more than once.
func (w *Writer) Close() error {
	serr := w.Sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return errors.Join(serr, err)
}

// writeLines writes batch, whole lines each ending in a newline, one
// write(2) a line. A write to a file is cut short when the process is
// killed during it, between the pages it copies, and a cut line is a torn
// record that needs `record repair`; a write of many lines crosses many
// more pages than one line does, so a kill would leave a torn record far
// more often (TestExactlyOnceKilledParallelBulkImport found it). The lines
// still share one fsync.
func writeLines(f *os.File, batch []byte) error {
	for len(batch) > 0 {
		n := bytes.IndexByte(batch, '\n') + 1
		if n == 0 {
			n = len(batch)
		}
		if _, err := f.Write(batch[:n]); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}
