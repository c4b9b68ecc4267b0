// Package kmsimport is kmsbridge's cloud-neutral core: the HSM side (select
// or generate, probe, wrap, read back), the step engine, the endpoint
// policy, the adapter every cloud implements, and the formats the clouds
// share (the split's bundle and wrapped-material files, evidence, rules).
// Each cloud is a sub-package: aws, gcp, azure.
package kmsimport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
)

// The step engine: the one runner every import flow (AWS's import, rotate,
// renew and the split; Google's; Azure's) runs its steps with. A flow is a
// list of named steps; the engine runs them in order and owns what is the
// same for every cloud: stopping at a signal between two steps (and
// noting it in the journal), turning a failure into the flow's *StepError
// (what exists now and the one command that finishes the job), recording
// each completed step, reporting every step to the log and the ceremony
// record as it happens, the test-only crash point after each step, and
// Halt. A flow supplies only what differs: its steps and its Flow.
// engine_test.go fails when a package under kmsimport/ declares a runner
// of its own.

// Step is one named step of a flow. Its name appears in logs, errors, the
// Result and the ceremony record.
type Step struct {
	Name string
	// Run does the step and says in one line what it did.
	Run func(context.Context) (string, error)
	// Skip leaves the step out: it does not apply to this request.
	Skip bool
}

// NotNeeded is the summary a step returns when an earlier step, or an
// earlier run, already did its work: the engine leaves it out of the
// Result's steps and reports nothing for it.
const NotNeeded = "\x00not needed"

// StepInterrupted names the record entry written when a signal stops a
// flow between two steps or during one.
const StepInterrupted = "interrupted"

// ErrInterrupted means SIGINT or SIGTERM stopped the command between two
// steps.
var ErrInterrupted = errors.New("interrupted")

// StepRecord is one completed step.
type StepRecord struct {
	Name    string    `json:"Name"`
	Summary string    `json:"Summary"`
	Time    time.Time `json:"Time"`
}

// StepEvent is one step completed or failed, with every identity and
// digest the flow knows at that point (never a secret), for a ceremony
// record.
type StepEvent struct {
	Step    string
	Summary string
	Err     error
	Facts   map[string]string
	Token   *hsm.TokenIdentity
}

// StepError is a failed step, with what exists now and how to finish.
type StepError struct {
	Step string
	Err  error
	// State lists what exists because of this run (or an earlier one it
	// resumed), including what may exist because an answer was lost.
	State []string
	// Resume is the advice that finishes the job, or "" when there is
	// nothing to finish.
	Resume string
	// Journal is the journal file that recorded the run's intents.
	Journal string
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Step, e.Err)
	if len(e.State) == 0 {
		b.WriteString("\nNothing was changed in the HSM or in KMS.")
	} else {
		b.WriteString("\nWhat exists now: " + strings.Join(e.State, "; ") + ".")
	}
	if e.Resume != "" {
		b.WriteString("\nTo finish: " + e.Resume)
	}
	if e.Journal != "" && len(e.State) > 0 {
		b.WriteString("\nJournal of intents: " + e.Journal)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

// ResumeByRerun is the advice of a flow whose every change a re-run finds
// again (by the journal, tags or labels) and takes up.
const ResumeByRerun = "re-run the same command: it takes up what exists and never creates it twice"

// RerunError is the *StepError of a flow that finishes by being run again:
// made lists what exists because of the run (or may, where an answer was
// lost); with nothing made there is nothing to finish.
func RerunError(step string, err error, made []string, j *journal.Journal) *StepError {
	se := &StepError{Step: step, Err: err, State: made, Journal: j.Path()}
	if len(made) > 0 {
		se.Resume = ResumeByRerun
	}
	return se
}

// RerunFlow is the Flow of a cloud's flow that finishes by being run
// again (Google's, Azure's): its failure lists what the run made, with
// ResumeByRerun.
type RerunFlow struct {
	// Made lists what the run made (or may have, where an answer was
	// lost); Steps is its result's steps; Token its result's token.
	Made    *[]string
	Steps   *[]StepRecord
	Token   *hsm.TokenIdentity
	Journal *journal.Journal
	// Of is the flow's Facts.
	Of func() map[string]string
}

func (f RerunFlow) StepFailed(step string, err error) error {
	return RerunError(step, err, *f.Made, f.Journal)
}
func (f RerunFlow) StepDone(s StepRecord)       { *f.Steps = append(*f.Steps, s) }
func (f RerunFlow) Facts() map[string]string    { return f.Of() }
func (f RerunFlow) HSMToken() hsm.TokenIdentity { return *f.Token }

// Flow is one run of a flow as the engine sees it: the state the steps
// build, which only the flow knows how to describe.
type Flow interface {
	// StepFailed turns err, from step, into the error the command
	// returns: a *StepError saying what exists now and the one command
	// that finishes the job.
	StepFailed(step string, err error) error
	// StepDone adds a completed step to the flow's result.
	StepDone(StepRecord)
	// Facts is every identity and digest the flow has established so far,
	// never a secret, for the ceremony record.
	Facts() map[string]string
	// HSMToken is the token the flow works in; zero until it is open.
	HSMToken() hsm.TokenIdentity
}

// Engine runs one flow's steps. Its fields are the flow's Importer
// settings, the same for every cloud.
type Engine struct {
	Flow Flow
	// Journal receives an "interrupted" note when a signal stops the flow.
	Journal *journal.Journal
	// Command names the kmsbridge command in the journal ("import").
	Command string
	// Log receives one line per step; nil discards.
	Log *slog.Logger
	// Observe hears of every step as it completes or fails.
	Observe func(StepEvent)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Halt is asked after every step whether the flow must stop (the
	// ceremony record could not be written).
	Halt func() error
}

// Run runs steps in order until one fails, reporting each as it completes
// or fails, so a record shows every step even if the process is killed
// later. A signal (ctx done) stops the flow before its next step, and one
// that arrives during a step makes that step's failure an interruption.
func (e Engine) Run(ctx context.Context, steps []Step) error {
	for _, s := range steps {
		if s.Skip {
			continue
		}
		if err := ctx.Err(); err != nil {
			_ = e.Journal.Note(e.command(), "interrupted", map[string]string{"BeforeStep": s.Name})
			err = e.Flow.StepFailed(s.Name, fmt.Errorf("%w: stopped by a signal before this step", ErrInterrupted))
			e.Emit(StepInterrupted, "", err)
			return err
		}
		summary, err := s.Run(ctx)
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, ErrInterrupted) {
				err = fmt.Errorf("%w by a signal during this step: %w", ErrInterrupted, err)
			}
			err = e.Flow.StepFailed(s.Name, err)
			e.Emit(s.Name, "", err)
			if errors.Is(err, ErrInterrupted) {
				_ = e.Journal.Note(e.command(), "interrupted", map[string]string{"DuringStep": s.Name})
				e.Emit(StepInterrupted, "", err)
			}
			return err
		}
		if summary != NotNeeded {
			e.Flow.StepDone(StepRecord{Name: s.Name, Summary: summary, Time: e.now().UTC()})
			e.Emit(s.Name, summary, nil)
		}
		CrashAt("step:" + s.Name)
		if e.Halt != nil {
			if herr := e.Halt(); herr != nil {
				return e.Flow.StepFailed(s.Name, fmt.Errorf("%w: %v; stopped before the next change", ErrJournal, herr))
			}
		}
	}
	return nil
}

// Emit reports one step, completed (err nil) or failed, to the log and to
// Observe, with the facts the flow knows now.
func (e Engine) Emit(step, summary string, err error) {
	if e.Log != nil {
		if err != nil {
			e.Log.Error("step failed", "step", step)
		} else {
			e.Log.Info(summary, "step", step)
		}
	}
	if e.Observe == nil {
		return
	}
	ev := StepEvent{Step: step, Summary: summary, Err: err, Facts: e.Flow.Facts()}
	if tok := e.Flow.HSMToken(); tok.Serial != "" || tok.Label != "" {
		ev.Token = &tok
	}
	e.Observe(ev)
}

func (e Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e Engine) command() string {
	if e.Command == "" {
		return "import"
	}
	return e.Command
}
