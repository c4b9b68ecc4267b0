package main

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/record"
)

const (
	flagRecord   = "record"
	flagOperator = "operator"
	flagAuditKey = "audit-key"
	catRecord    = "Ceremony record"
)

// recordFlags are the flags of every command that changes something.
func recordFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagRecord, Category: catRecord, Usage: "append what this command does to the ceremony record `FILE` (JSON lines, hash-chained)"},
		&cli.StringFlag{Name: flagOperator, Category: catRecord, Usage: "the operator the record names (default: the OS user)"},
		stateDirFlag(),
	}
}

// auditKeyFlag signs record entries; only commands that open a token have it.
func auditKeyFlag() cli.Flag {
	return &cli.StringFlag{Name: flagAuditKey, Category: catRecord, Usage: "sign record entries with the HSM audit key `LABEL` (see audit-key create)"}
}

// recorder appends a command's steps to the ceremony record. A nil
// *recorder records nothing.
type recorder struct {
	w       *record.Writer
	command string
	inputs  map[string]string
	log     *slog.Logger
	// err is the first failure to append: the command fails with it.
	err error
	// mu guards err and pending: bulk imports record from several
	// goroutines.
	mu sync.Mutex
	// open, when set, opens the writer only at close, and add keeps the
	// entries until then: approve is logged in as the Security Officer
	// while it works, and the audit key signs only for the user.
	open    func() (*record.Writer, func(), error)
	pending []record.Entry
	// deferred: entries are written at once and made durable by the next
	// wait (deferDurability); set before the first entry.
	deferred bool
	// where is the KMS endpoint the command sends to, when it has a KMS
	// client: every entry names it (Inputs KmsEndpoint...), with the TLS
	// peer once one has answered.
	where func() (kmsimport.Endpoint, bool)
}

// entryInputs are the command's inputs plus where its KMS requests go.
func (r *recorder) entryInputs() map[string]string {
	if r.where == nil {
		return r.inputs
	}
	ep, ok := r.where()
	if !ok {
		return r.inputs
	}
	in := make(map[string]string, len(r.inputs)+6)
	for k, v := range r.inputs {
		in[k] = v
	}
	for k, v := range ep.Facts() {
		in[k] = v
	}
	return in
}

// openRecorder opens --record, if given, signing with signer when not nil.
func openRecorder(c *cliContext, command string, inputs map[string]string, log *slog.Logger, signer crypto.Signer, signerID []byte) (*recorder, error) {
	path := c.String(flagRecord)
	if path == "" {
		return nil, nil
	}
	if err := kmsimport.CheckRecordFile("--"+flagRecord, path); err != nil {
		return nil, err
	}
	w, err := record.Open(path, signer, signerID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", kmsimport.ErrInvalidInput, err)
	}
	if op := c.String(flagOperator); op != "" {
		w.Operator = op
	}
	for k, v := range inputs {
		if v == "" {
			delete(inputs, k)
		}
	}
	return &recorder{w: w, command: command, inputs: inputs, log: log, where: func() (kmsimport.Endpoint, bool) { return kmsEndpoint(c) }}, nil
}

// observe records one step of a kmsimport flow.
func (r *recorder) observe(ev kmsimport.StepEvent) {
	r.add(ev.Step, ev.Facts, ev.Err, ev.Token)
}

// add appends one entry.
func (r *recorder) add(step string, outputs map[string]string, stepErr error, tok *hsm.TokenIdentity) {
	if r == nil {
		return
	}
	if r.failed() != nil {
		return
	}
	e := record.Entry{Command: r.command, Step: step, Inputs: r.entryInputs(), Outputs: outputs, Outcome: "ok"}
	if outputs == nil {
		e.Outputs = map[string]string{}
	}
	if tok != nil {
		ti := record.TokenInfo(*tok)
		e.Token = &ti
	}
	if stepErr != nil {
		e.Outcome, e.Error = "error", stepErr.Error()
	}
	r.mu.Lock()
	if r.w == nil { // opened at close
		r.pending = append(r.pending, e)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	// Outside r.mu: the writer orders concurrent appends itself and lets
	// them share fsyncs (record.Writer.Append).
	if _, err := r.append(e); err != nil {
		r.fail(err)
	}
}

// append appends e, durable before it returns unless the recorder defers
// (deferDurability): then it is written, and made durable by the next
// intent's wait or by sync.
func (r *recorder) append(e record.Entry) (record.Entry, error) {
	if r.deferred {
		return r.w.AppendWritten(e)
	}
	return r.w.Append(e)
}

// deferDurability makes the record's entries, and j's outcomes, notes and
// progress, return once written, not once durable: only an intent waits,
// for the journal's fsync and the record's at once, before the change it
// announces, and the caller calls sync before it reports to the user what
// the entries say (docs/exactly-once.md, "Durable when it must be"). For
// bulk runs, whose workers would otherwise wait for an fsync after every
// entry, one after the other.
func (r *recorder) deferDurability(j *journal.Journal) {
	if r != nil && r.w != nil {
		r.deferred = true
		j.SetMirror(r.journalEntryWritten)
		j.SetDeferred(true, r.sync)
		return
	}
	j.SetDeferred(true, nil)
}

// sync makes every entry written so far durable; its failure is the
// record's, and the command fails with it.
func (r *recorder) sync() error {
	if r == nil || r.w == nil {
		return nil
	}
	if err := r.w.Sync(); err != nil {
		return r.fail(err)
	}
	return nil
}

// fail keeps the first append failure; the command fails with it.
func (r *recorder) fail(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = fmt.Errorf("the ceremony record could not be written: %w", err)
		r.log.Error(r.err.Error())
	}
	return r.err
}

// close closes the record and returns the command's error, or the
// record's own failure, which a ceremony must not ignore.
func (r *recorder) close(cmdErr error) error {
	if r == nil {
		return cmdErr
	}
	if r.w == nil && r.open != nil {
		w, done, err := r.open()
		if err != nil {
			return errors.Join(cmdErr, fmt.Errorf("the ceremony record could not be written: %w; it lacks %d entries of this run", err, len(r.pending)))
		}
		defer done()
		r.w = w
		for _, e := range r.pending {
			if _, err := r.w.Append(e); err != nil && r.err == nil {
				r.err = fmt.Errorf("the ceremony record could not be written: %w", err)
			}
		}
	}
	if err := r.w.Close(); err != nil && r.err == nil {
		r.err = err
	}
	if r.err != nil {
		return errors.Join(cmdErr, r.err)
	}
	r.log.Info("ceremony record appended", "entries", r.w.Count(), "head", r.w.Head())
	return cmdErr
}

// observer is the Importer hook that feeds the recorder.
func (r *recorder) observer() func(kmsimport.StepEvent) {
	if r == nil {
		return nil
	}
	return r.observe
}

// stopIfInterrupted is a step boundary of a command outside the import
// flows: once SIGINT or SIGTERM has arrived it records an "interrupted"
// entry naming the step not taken and returns ErrInterrupted with advice,
// before the step's change is made; otherwise nil.
func stopIfInterrupted(c *cliContext, rec *recorder, step string, tok *hsm.TokenIdentity, advice string) error {
	if c.Context.Err() == nil {
		return nil
	}
	err := fmt.Errorf("%w: stopped by a signal before step %s: %s", kmsimport.ErrInterrupted, step, advice)
	rec.add(kmsimport.StepInterrupted, map[string]string{"BeforeStep": step}, err, tok)
	return rec.close(err)
}
