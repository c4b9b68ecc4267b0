package main

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/record"
)

const flagStateDir = "state-dir"

// stateDirFlag is the journal's directory; every command that changes
// something has it.
func stateDirFlag() cli.Flag {
	return &cli.StringFlag{Name: flagStateDir, Category: catRecord, Usage: "keep the journal of intents (what re-runs resume from) in `DIR` (default $XDG_STATE_HOME/kmsbridge, else ~/.local/state/kmsbridge)"}
}

// kmsTarget names the KMS account a journal belongs to, as far as it is
// known before any call: the Region, the endpoint as the KMS client
// resolved it, and the profile (see kmsimport.Client.Target). It never
// comes from an environment variable of its own.
func kmsTarget(c *cli.Context, region string) string {
	if cl, ok := c.App.Metadata[mdKMSClient].(*kmsimport.Client); ok && cl.Options().Region == region {
		return cl.Target()
	}
	// No client (a command that names a Region without calling KMS):
	// AWS's endpoint, and the profile given.
	t := region + "@aws"
	if p := c.String(flagProfile); p != "" {
		t += "@" + p
	}
	return t
}

// openJournal opens the journal of this token and KMS target, mirroring
// every entry into rec when there is a ceremony record. It waits for
// another kmsbridge working on the same token and target; a signal ends
// the wait.
func openJournal(c *cli.Context, tokenSerial, region string, rec *recorder) (*journal.Journal, error) {
	return openJournalFor(c, tokenSerial, kmsTarget(c, region), rec)
}

// openJournalFor is openJournal for a given KMS target.
func openJournalFor(c *cli.Context, tokenSerial, target string, rec *recorder) (*journal.Journal, error) {
	dir := c.String(flagStateDir)
	if dir == "" {
		d, err := journal.DefaultDir()
		if err != nil {
			return nil, usageError{err.Error()}
		}
		dir = d
	}
	j, err := journal.Open(c.Context, dir, journal.Scope{TokenSerial: tokenSerial, Target: target})
	if err != nil {
		return nil, fmt.Errorf("%w: %v; nothing was changed", kmsimport.ErrInvalidInput, err)
	}
	if rec != nil {
		j.SetMirror(rec.journalEntry)
	}
	return j, nil
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

// fieldName makes a journal map key into a record member name.
func fieldName(prefix, k string) string {
	parts := nonWord.Split(k, -1)
	var b strings.Builder
	b.WriteString(prefix)
	for _, p := range parts {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

// journalEntry appends one journal entry to the ceremony record, as the
// step "journal-intent", "journal-outcome" or "journal-note" (see
// record/doc.go). Its error stops the command before its next change.
func (r *recorder) journalEntry(e journal.Entry) error {
	if r == nil {
		return nil
	}
	if r.err != nil {
		return r.err
	}
	out := map[string]string{"Op": e.Op, "Attempt": e.Attempt}
	if e.Result != "" {
		out["Result"] = e.Result
	}
	add := func(prefix string, m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out[fieldName(prefix, k)] = m[k]
		}
	}
	add("Target", e.Target)
	add("Find", e.Find)
	add("", e.Facts)
	en := record.Entry{Command: r.command, Step: "journal-" + e.Kind, Inputs: map[string]string{}, Outputs: out, Outcome: record.OutcomeOK}
	if r.where != nil {
		if ep, ok := r.where(); ok {
			en.Inputs = ep.Facts()
		}
	}
	if e.Kind == journal.KindOutcome && e.Result != journal.ResultOK {
		en.Outcome, en.Error = record.OutcomeError, e.Result+": "+e.Error
	}
	if _, err := r.w.Append(en); err != nil {
		r.err = fmt.Errorf("the ceremony record could not be written: %w", err)
		return r.err
	}
	return nil
}

// failed is the record's first write failure: the flow stops on it.
func (r *recorder) failed() error {
	if r == nil {
		return nil
	}
	return r.err
}
