package journal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/groupcommit"
	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// Entry kinds.
const (
	KindIntent  = "intent"
	KindOutcome = "outcome"
	// KindNote is a fact the journal keeps that is not a call: a resumed
	// run, an interruption, torn bytes moved aside.
	KindNote = "note"
	// KindProgress is what a long intent (a whole rotation) learnt while
	// it was open, e.g. the id of a key it made; it carries the intent's
	// Attempt, so it stays in the journal as long as the intent is open.
	KindProgress = "progress"
)

// Outcome results.
const (
	// ResultOK means the call took effect and its answer arrived.
	ResultOK = "ok"
	// ResultFailed means the call was refused: it took no effect.
	ResultFailed = "failed"
	// ResultUnknown means the answer was lost: the call may have taken
	// effect. Recovery looks for the effect by the intent's Find facts.
	ResultUnknown = "unknown"
)

// Entry is one line of the journal.
type Entry struct {
	// Kind is KindIntent, KindOutcome, KindNote or KindProgress.
	Kind string `json:"kind"`
	// Attempt ties an outcome to its intent; unique per intent.
	Attempt string    `json:"attempt"`
	Time    time.Time `json:"time"`
	// Command is the kmsbridge command, e.g. "import".
	Command string `json:"command,omitempty"`
	// Op is the call, e.g. "CreateKey" or "C_GenerateKey".
	Op string `json:"op,omitempty"`
	// Target says what the call acts on: key ids, labels, alias names.
	Target map[string]string `json:"target,omitempty"`
	// Find says how to find the call's effect if its answer is lost, e.g.
	// {"tag:kmsbridge:attempt": "<Attempt>"}.
	Find map[string]string `json:"find,omitempty"`
	// Result is the outcome: ResultOK, ResultFailed or ResultUnknown.
	Result string `json:"result,omitempty"`
	// Facts are what the call produced (ids, digests; never a secret).
	Facts map[string]string `json:"facts,omitempty"`
	// Error is the failure's message for a failed or unknown outcome.
	Error string `json:"error,omitempty"`
}

// Scope names one journal: a token and a KMS target.
type Scope struct {
	// TokenSerial is the HSM token's serial number; "" for commands that
	// open no token (prepare, upload), which use "no-token".
	TokenSerial string
	// Target is the KMS Region, endpoint and account, e.g.
	// "us-east-1@127.0.0.1:4599@111122223333".
	Target string
	// Legacy are targets under which earlier kmsbridge versions kept this
	// scope's journal (without the account); Open adopts such a journal
	// once (see adoptLegacy).
	Legacy []string
}

var unsafeName = lazyre.New(`[^A-Za-z0-9._@-]+`)

// FileName is the journal's file name for s, safe as a path element.
func (s Scope) FileName() string {
	tok := s.TokenSerial
	if tok == "" {
		tok = "no-token"
	}
	name := unsafeName.ReplaceAllString(tok+"@"+s.Target, "_")
	return strings.TrimLeft(name, ".") + ".journal"
}

// DefaultDir is the state directory used without --state-dir:
// $XDG_STATE_HOME/kmsbridge, else ~/.local/state/kmsbridge.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "kmsbridge"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory for the journal: give --state-dir DIR (%v)", err)
	}
	return filepath.Join(home, ".local", "state", "kmsbridge"), nil
}

// Mirror receives every entry after it is durable in the journal, e.g. to
// append it to the ceremony record. An error from Mirror fails Append: the
// command must stop before its next change (fail closed).
type Mirror func(Entry) error

// Journal is one open journal file, locked against other kmsbridge
// processes. A nil *Journal records nothing and finds nothing, for
// callers (and tests) that have none; every method accepts it.
type Journal struct {
	mu   sync.Mutex
	path string
	f    *os.File
	// tokenLock is the token's lock file, held until Close; nil for a
	// journal of no token.
	tokenLock *os.File
	// serial is the scope's token serial.
	serial  string
	entries []Entry
	// The indexes, so that a lookup costs what it finds, not the length of
	// a journal that grows with every run: the first outcome of each
	// attempt, the attempts with an outcome other than unknown, and the
	// intents of each operation, oldest first (indexes into entries).
	firstOutcome map[string]int
	settled      map[string]bool
	intentsOf    map[string][]int
	progressOf   map[string][]int
	mirror       Mirror
	// commit shares fsyncs among concurrent appenders; failed is the
	// first write failure, after which nothing more is appended.
	commit *groupcommit.Syncer
	failed error
	// syncHook, when set (tests), is called instead of f.Sync.
	syncHook func(*os.File) error
	// deferred: only intents wait for their fsync (SetDeferred);
	// mirrorSync makes the mirror's entries durable beside an intent's
	// fsync.
	deferred   bool
	mirrorSync func() error
	// Torn is the path the torn bytes of an earlier crash were moved to by
	// Open, or "".
	Torn string
	// Adopted are the journals of earlier kmsbridge versions under an
	// older name of this scope that Open took over (see adoptLegacy).
	Adopted []string
	// Now is the clock; Open sets time.Now.
	Now func() time.Time
}

// Open opens (creating 0600, in a 0700 directory) the journal for scope in
// dir, which must be a directory of the user's own that no one else may
// write (safefile.StateDir); the journal must be a regular file, never a
// symlink, of at most safefile.MaxJournal bytes. It waits for another kmsbridge process that holds it until ctx is
// done. A torn last line is moved aside to <file>.torn-<time> and named
// in Torn.
func Open(ctx context.Context, dir string, scope Scope) (*Journal, error) {
	return openScope(ctx, dir, scope, nil)
}

// openScope is Open; with holder, the token's lock is holder's (see OpenBeside).
func openScope(ctx context.Context, dir string, scope Scope, holder *Journal) (*Journal, error) {
	if err := safefile.StateDir("state directory (--state-dir)", dir); err != nil {
		return nil, err
	}
	// The token's lock first, then the journal's, in that order in every
	// process: label uniqueness is a fact of the token, whatever Region,
	// endpoint or profile a run talks to, so two runs on one token never
	// search for a label and generate under it at once.
	var tokenLock *os.File
	if scope.TokenSerial != "" && holder == nil {
		lp := filepath.Join(dir, scope.TokenLockName())
		lf, err := safefile.OpenFile("token lock", lp, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("token lock %s: %w (give --state-dir DIR, a writable directory)", lp, err)
		}
		if err := waitLockFor(ctx, lf, "this token"); err != nil {
			lf.Close()
			return nil, fmt.Errorf("token lock %s: %w", lp, err)
		}
		tokenLock = lf
	}
	path := filepath.Join(dir, scope.FileName())
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := safefile.OpenFile("journal", path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		closeFile(tokenLock)
		return nil, fmt.Errorf("%w (move it aside, or give --state-dir DIR, a directory of your own)", err)
	}
	if err := waitLock(ctx, f); err != nil {
		f.Close()
		closeFile(tokenLock)
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	j := &Journal{path: path, f: f, tokenLock: tokenLock, serial: scope.TokenSerial, Now: time.Now}
	if err := j.adoptLegacy(ctx, dir, scope); err != nil {
		// A refusal leaves the state directory as it was: the journal
		// file this open made (still empty, under its lock) goes again.
		if fi, serr := f.Stat(); created && serr == nil && fi.Size() == 0 {
			_ = os.Remove(path)
		}
		f.Close()
		closeFile(tokenLock)
		return nil, err
	}
	opened := false
	defer func() {
		if !opened {
			closeFile(tokenLock)
		}
	}()
	if err := j.finishCompaction(); err != nil {
		f.Close()
		return nil, err
	}
	if err := j.load(); err != nil {
		f.Close()
		return nil, err
	}
	moved, err := j.compact(j.Now())
	if err != nil {
		f.Close()
		return nil, err
	}
	if moved > 0 {
		if err := j.append(Entry{Kind: KindNote, Attempt: NewAttemptID(), Op: "compacted", Facts: map[string]string{"MovedTo": j.archivePath(), "Entries": fmt.Sprint(moved)}}); err != nil {
			f.Close()
			return nil, err
		}
	}
	for _, from := range j.Adopted {
		if err := j.append(Entry{Kind: KindNote, Attempt: NewAttemptID(), Op: "adopted-journal", Facts: map[string]string{"From": from, "MovedTo": from + adoptedSuffix}}); err != nil {
			f.Close()
			return nil, err
		}
	}
	opened = true
	return j, nil
}

// TokenLockName is the file whose lock every run on the token holds,
// whatever its KMS target: <token-serial>.token.lock.
func (s Scope) TokenLockName() string {
	return strings.TrimLeft(unsafeName.ReplaceAllString(s.TokenSerial, "_"), ".") + ".token.lock"
}

func closeFile(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

// waitLock takes an exclusive lock on f, polling until ctx is done.
func waitLock(ctx context.Context, f *os.File) error {
	return waitLockFor(ctx, f, "this token and KMS target")
}

// waitLockFor is waitLock; what names what the lock guards, for the
// message when the wait ends.
func waitLockFor(ctx context.Context, f *os.File, what string) error {
	for {
		err := tryLock(f)
		if !errors.Is(err, errWouldBlock) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("another kmsbridge is working on %s and did not finish: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var errWouldBlock = errors.New("locked")

// load reads every entry; a torn last line is moved aside.
// The read is bounded (safefile.MaxJournal) and of a regular file, so it
// ends on its own; ctx is for the wait for the lock only.
func (j *Journal) load() error {
	data, err := safefile.ReadAll(context.Background(), io.NewSectionReader(j.f, 0, safefile.MaxJournal+1), "journal", j.path, safefile.MaxJournal)
	if err != nil {
		return err
	}
	good := data
	if n := len(data); n > 0 && data[n-1] != '\n' {
		cut := bytes.LastIndexByte(data, '\n') + 1
		good = data[:cut]
		torn := fmt.Sprintf("%s.torn-%s", j.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
		if err := writeNew(torn, data[cut:]); err != nil {
			return fmt.Errorf("journal %s ends in a torn line that could not be kept as evidence: %w", j.path, err)
		}
		if err := j.f.Truncate(int64(cut)); err != nil {
			return fmt.Errorf("journal %s: cut its torn last line: %w", j.path, err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("journal %s: %w", j.path, err)
		}
		j.Torn = torn
	}
	sc := bufio.NewScanner(bytes.NewReader(good))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("journal %s line %d is not a journal entry (%v): move the file aside and run again; kmsbridge then finds earlier keys by their tags", j.path, line, err)
		}
		j.keep(e)
	}
	if j.Torn != "" {
		return j.append(Entry{Kind: KindNote, Attempt: NewAttemptID(), Op: "torn-line", Facts: map[string]string{"MovedTo": j.Torn}})
	}
	return sc.Err()
}

// Path is the journal file's path.
func (j *Journal) Path() string {
	if j == nil {
		return ""
	}
	return j.path
}

// SetMirror makes every later entry also go to m.
func (j *Journal) SetMirror(m Mirror) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.mirror = m
	j.mu.Unlock()
}

// SetDeferred(true, mirrorSync) makes only intents wait for their fsync.
// An outcome, progress or note is written at once and returns then; the
// fsync that makes it durable is the one of the next intent (of any
// goroutine: every fsync of the file covers every line written before it)
// or of Sync, which the caller must call before it reports to the user
// what the entry says (a key done). So every change is still announced by
// a durable intent, and nothing is reported before it is durable; what a
// power cut can lose is the tail of entries since the last intent, which
// is what it could lose before between an outcome's write and its fsync:
// an intent without its outcome, which recovery settles by looking for
// the call's effect (docs/exactly-once.md, "Durable when it must be").
//
// In this mode every entry is mirrored once written, not once durable,
// and an intent waits for its own fsync and for mirrorSync (the mirror's
// fsync, e.g. the ceremony record's) at the same time, so that the two
// files' fsyncs overlap instead of following each other. A mirror entry of
// an intent whose fsync then fails shows an intent without an outcome, as
// a crash before the call would.
func (j *Journal) SetDeferred(on bool, mirrorSync func() error) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.deferred, j.mirrorSync = on, mirrorSync
	j.mu.Unlock()
}

// Sync returns once every entry written so far is durable. With
// SetDeferred, callers call it before reporting what an outcome says.
func (j *Journal) Sync() error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	commit := j.commit
	j.mu.Unlock()
	if commit == nil {
		return nil
	}
	return j.wait(commit.Latest())
}

// wait waits for the fsync covering ticket and keeps its failure, after
// which nothing more is appended.
func (j *Journal) wait(ticket uint64) error {
	if err := j.commit.Wait(ticket); err != nil {
		j.mu.Lock()
		if j.failed == nil {
			j.failed = err
		}
		j.mu.Unlock()
		return fmt.Errorf("fsync %s: %w", j.path, err)
	}
	return nil
}

// NewAttemptID is a fresh random id, 16 hex digits.
func NewAttemptID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Intent is a call about to be made.
type Intent struct {
	// Attempt is the id to use; "" makes a fresh one. CreateKey's caller
	// sets it first, to send it as a tag in the same call.
	Attempt string
	Command string
	Op      string
	Target  map[string]string
	Find    map[string]string
}

// Pending is an intent made durable, waiting for its outcome.
type Pending struct {
	j     *Journal
	entry Entry
}

// Attempt is the intent's attempt id.
func (p *Pending) Attempt() string { return p.entry.Attempt }

// Intend makes in durable before its call. An error means the call must
// not be made.
func (j *Journal) Intend(in Intent) (*Pending, error) {
	if in.Attempt == "" {
		in.Attempt = NewAttemptID()
	}
	e := Entry{Kind: KindIntent, Attempt: in.Attempt, Command: in.Command, Op: in.Op, Target: in.Target, Find: in.Find}
	if j == nil {
		return &Pending{j: j, entry: e}, nil
	}
	e.Time = j.Now().UTC()
	p := &Pending{j: j, entry: e}
	if err := j.append(e); err != nil {
		return nil, fmt.Errorf("the journal could not record the intent to call %s, so it was not called: %w", in.Op, err)
	}
	return p, nil
}

// Reopen is the Pending of intent in, an intent read back from the
// journal that has no final outcome yet, so that the run that takes it up
// records its progress and its outcome under the same attempt.
func (j *Journal) Reopen(in Entry) *Pending {
	return &Pending{j: j, entry: in}
}

// Time is when the intent was written (zero for a nil journal's).
func (p *Pending) Time() time.Time { return p.entry.Time }

// Progress records facts an open intent learnt (ids of what it made),
// under its attempt. An error means the command must stop before its next
// change.
func (p *Pending) Progress(facts map[string]string) error {
	if p == nil || p.j == nil {
		return nil
	}
	e := Entry{Kind: KindProgress, Attempt: p.entry.Attempt, Command: p.entry.Command, Op: p.entry.Op, Target: p.entry.Target, Facts: facts}
	if err := p.j.append(e); err != nil {
		return fmt.Errorf("the journal could not record the progress of %s: %w", p.entry.Op, err)
	}
	return nil
}

// Progress returns the facts recorded under attempt by Pending.Progress,
// merged oldest first (a later value of a fact replaces an earlier one).
func (j *Journal) Progress(attempt string) map[string]string {
	out := map[string]string{}
	if j == nil {
		return out
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, i := range j.progressOf[attempt] {
		for k, v := range j.entries[i].Facts {
			out[k] = v
		}
	}
	return out
}

// Done records the outcome of the pending call: result is ResultOK,
// ResultFailed or ResultUnknown; facts what it produced; callErr its
// error. An error means the command must stop before its next change.
func (p *Pending) Done(result string, facts map[string]string, callErr error) error {
	if p == nil || p.j == nil {
		return nil
	}
	e := Entry{Kind: KindOutcome, Attempt: p.entry.Attempt, Command: p.entry.Command, Op: p.entry.Op, Target: p.entry.Target, Result: result, Facts: facts}
	if callErr != nil {
		e.Error = callErr.Error()
	}
	if err := p.j.append(e); err != nil {
		return fmt.Errorf("the journal could not record the outcome (%s) of %s: %w", result, p.entry.Op, err)
	}
	return nil
}

// Note records a fact that is not a call, e.g. a resumed run or an
// interruption.
func (j *Journal) Note(command, what string, facts map[string]string) error {
	if j == nil {
		return nil
	}
	return j.append(Entry{Kind: KindNote, Attempt: NewAttemptID(), Command: command, Op: what, Facts: facts})
}

// append makes e durable, then keeps it and mirrors it. Appenders from
// several goroutines share fsyncs (internal/groupcommit): each writes its
// line under j.mu, in file order, then waits, without j.mu, for an fsync
// that began after its write; append returns only then, so an intent is
// durable before its call whoever else is appending. An entry is kept
// (visible to Outcome, Unsettled, ...) and mirrored only once durable.
func (j *Journal) append(e Entry) error {
	j.mu.Lock()
	if e.Time.IsZero() {
		e.Time = j.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		j.mu.Unlock()
		return err
	}
	if j.f == nil {
		j.mu.Unlock()
		return errors.New("the journal is closed")
	}
	if j.failed != nil {
		j.mu.Unlock()
		return fmt.Errorf("write %s failed earlier (%v), so nothing more is appended: run the command again", j.path, j.failed)
	}
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		// The file may end in part of a line: the next Open moves it aside.
		j.failed = err
		j.mu.Unlock()
		return fmt.Errorf("write %s: %w", j.path, err)
	}
	if j.commit == nil {
		f, hook := j.f, j.syncHook
		j.commit = groupcommit.New(func() error {
			if hook != nil {
				return hook(f)
			}
			return f.Sync()
		})
	}
	ticket := j.commit.Wrote()
	if j.deferred {
		// Kept and mirrored at once; only an intent waits (SetDeferred).
		j.keep(e)
		mirror, mirrorSync := j.mirror, j.mirrorSync
		j.mu.Unlock()
		if err := j.mirrorEntry(mirror, e); err != nil {
			return err
		}
		if e.Kind != KindIntent {
			return nil
		}
		var merr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			if mirrorSync != nil {
				merr = mirrorSync()
			}
		}()
		err := j.wait(ticket)
		<-done
		if merr != nil {
			merr = fmt.Errorf("the ceremony record could not make journal entry %s %s durable: %w", e.Kind, e.Op, merr)
		}
		return errors.Join(err, merr)
	}
	j.mu.Unlock()
	if err := j.wait(ticket); err != nil {
		return err
	}
	j.mu.Lock()
	j.keep(e)
	mirror := j.mirror
	j.mu.Unlock()
	return j.mirrorEntry(mirror, e)
}

// mirrorEntry hands e to mirror, if there is one.
func (j *Journal) mirrorEntry(mirror Mirror, e Entry) error {
	if mirror == nil {
		return nil
	}
	if err := mirror(e); err != nil {
		return fmt.Errorf("the ceremony record could not take journal entry %s %s: %w", e.Kind, e.Op, err)
	}
	return nil
}

// keep adds e to the entries and the indexes. Callers hold j.mu or own j.
func (j *Journal) keep(e Entry) {
	if j.firstOutcome == nil {
		j.firstOutcome, j.settled, j.intentsOf, j.progressOf = map[string]int{}, map[string]bool{}, map[string][]int{}, map[string][]int{}
	}
	i := len(j.entries)
	j.entries = append(j.entries, e)
	switch e.Kind {
	case KindIntent:
		j.intentsOf[e.Op] = append(j.intentsOf[e.Op], i)
	case KindOutcome:
		if _, ok := j.firstOutcome[e.Attempt]; !ok {
			j.firstOutcome[e.Attempt] = i
		}
		if e.Result != ResultUnknown {
			j.settled[e.Attempt] = true
		}
	case KindProgress:
		j.progressOf[e.Attempt] = append(j.progressOf[e.Attempt], i)
	}
}

// Entries returns every entry, oldest first.
func (j *Journal) Entries() []Entry {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Entry(nil), j.entries...)
}

// Outcome returns the outcome entry of attempt, if there is one (the
// first, when there are several).
func (j *Journal) Outcome(attempt string) (Entry, bool) {
	if j == nil {
		return Entry{}, false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	i, ok := j.firstOutcome[attempt]
	if !ok {
		return Entry{}, false
	}
	return j.entries[i], true
}

// Unsettled returns the intents of op whose effect is not known: no
// outcome (the process stopped between intent and outcome) or an
// "unknown" outcome, for which match returns true; newest first.
func (j *Journal) Unsettled(op string, match func(Entry) bool) []Entry {
	return j.intents(op, true, match)
}

// Intents returns every intent of op for which match returns true, newest
// first, with or without an outcome.
func (j *Journal) Intents(op string, match func(Entry) bool) []Entry {
	return j.intents(op, false, match)
}

// intents returns op's intents (only the unsettled ones when unsettled)
// for which match returns true, newest first. match runs without j.mu, so
// it may call the journal.
func (j *Journal) intents(op string, unsettled bool, match func(Entry) bool) []Entry {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	idx := j.intentsOf[op]
	all := make([]Entry, 0, len(idx))
	for k := len(idx) - 1; k >= 0; k-- {
		if e := j.entries[idx[k]]; !unsettled || !j.settled[e.Attempt] {
			all = append(all, e)
		}
	}
	j.mu.Unlock()
	out := all[:0]
	for _, e := range all {
		if match == nil || match(e) {
			out = append(out, e)
		}
	}
	return out
}

// Close releases the lock and closes the file.
func (j *Journal) Close() error {
	if j == nil {
		return nil
	}
	// Entries written without waiting (SetDeferred) are made durable
	// first.
	serr := j.Sync()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	closeFile(j.tokenLock)
	j.tokenLock = nil
	return errors.Join(serr, err)
}
