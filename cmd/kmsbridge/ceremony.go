package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/record"
)

func ceremonyCommand() *cli.Command {
	return &cli.Command{
		Name:  "ceremony",
		Usage: "run a key ceremony from one reviewed YAML file",
		Commands: []*cli.Command{{
			Name:      "run",
			Usage:     "import every key of a ceremony file, narrating each step into the ceremony record",
			ArgsUsage: "[--dry-run] FILE.yaml",
			Description: `The file says everything: the HSM (module, token, where the PIN comes from),
KMS (region, endpoint, profile), the record, the audit key, the operators and
the keys. It is parsed strictly and validated whole before anything is touched;
every problem is reported with its line and field.

--dry-run prints the plan, key by key, and checks what can be checked without
changing anything: the token is there and the PIN works, labels are free or
present as the plan needs, the token can generate and wrap each key as asked,
KMS is reachable and aliases are free or already point to this ceremony's keys.

A real run narrates each step to stderr and appends it to the record, and stops
at the first failure. With --parallel N, up to N keys run at once, a key's
failure does not stop the others, and a progress display and a summary table
replace the narration (the record still has every step). Run it again and it carries on: keys already imported
are verified and skipped, and nothing is created twice (earlier work is
recognised by the KMS key's alias and kmsbridge tags, and by the record).
At the end it prints the record's head hash and entry count: write them on
the paper script, so that record verify --expect-head can later prove that
nothing was cut off the end.

Example:
  kmsbridge ceremony run --dry-run payments-2026.yaml
  kmsbridge ceremony run payments-2026.yaml`,
			Flags: append(outputFlags(),
				&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and run the read-only checks; change nothing"},
				&cli.StringFlag{Name: flagOperator, Usage: "the operator at the keyboard, as the record names them (default: the file's operators)"},
				stateDirFlag(),
				&cli.DurationFlag{Name: flagKMSTimeout, Value: awskms.DefaultKMSTimeout, Usage: "give up on one KMS request after `DURATION`"},
				parallelFlag(), kmsRateFlag(),
			),
			OnUsageError: onUsageError,
			Action:       action(runCeremony),
		}},
	}
}

func runCeremony(c *cliContext) error {
	if c.NArg() != 1 {
		return usageError{fmt.Sprintf("ceremony run takes one FILE.yaml, after the flags (got %q)", c.Args().Slice())}
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	f, err := ceremony.Load(c.Args().First(), time.Now())
	if err != nil {
		return err
	}
	if err := ceremony.CheckOnePass(f); err != nil {
		return err
	}
	dry := c.Bool("dry-run")
	log.Info("ceremony file loaded", "file", f.Source(), "sha256", f.Digest(), "keys", len(f.Keys), "dry_run", dry)
	if err := kmsimport.CheckRecordFile(f.Source()+": record", f.Record); err != nil {
		return err
	}

	// A file whose keys all go to other clouds (no kms section, or every
	// key aws: false) opens no AWS client and no AWS journal.
	needAWS := f.NeedsAWS()
	var api *awskms.Client
	if needAWS {
		lim, err := kmsLimiter(c)
		if err != nil {
			return err
		}
		o := f.ClientOptions(f.KMS.Region)
		o.Timeout, o.Limiter = c.Duration(flagKMSTimeout), lim
		if api, err = newKMSClient(c, o); err != nil {
			return err
		}
	}
	mod, err := hsm.LoadModule(f.ModuleConfig())
	if err != nil {
		return err
	}
	s := &session{mod: mod}
	defer s.Close()
	if s.tok, err = mod.OpenToken(f.TokenSelector()); err != nil {
		return err
	}
	pin, err := ceremonyPIN(f, log)
	if err != nil {
		return err
	}
	if err := s.tok.LoginPIN(pin); err != nil {
		return err
	}
	id := s.tok.Identity()
	log.Info("opened token and logged in", "label", id.Label, "serial", id.Serial, "manufacturer", id.Manufacturer, "model", id.Model)

	ev, err := ceremony.RecordEvidence(f.Record)
	if err != nil {
		return err
	}
	runner := &ceremony.Runner{File: f, Token: s.tok, Log: log, Generated: ev.Generated, RecordKMS: ev.KMSKeys, RecordAttempts: ev.Attempts}
	if needAWS {
		runner.Clouds.AWS.KMS = api
		if runner.Clouds.AWS.Replicas, err = ceremony.ReplicaClients(c.Context, f); err != nil {
			return err
		}
	}
	var clouds *ceremonyClouds
	if hasTargets(f) {
		clouds = newCeremonyClouds(c, id.Serial)
		runner.Clouds.GCP, runner.Clouds.Azure = clouds, clouds
	}

	// The journal tells the plan which labels an interrupted run of this
	// host generated (the dry run only reads it); it holds the token's
	// lock, beside which the other targets' journals open. Without an AWS
	// part, the first target's journal holds the lock (ceremonyClouds).
	var j *journal.Journal
	if needAWS {
		if j, err = openClientJournal(c, id.Serial, api, nil); err != nil {
			return err
		}
		defer j.Close()
		runner.Journal = j
	}
	if clouds != nil {
		// Closed before j: the targets' journals are opened beside j's
		// token lock.
		defer clouds.Close()
		clouds.holder = j
	}
	if dry {
		return printDryRun(c, runner.DryRun(c.Context), f, format)
	}
	// Every other cloud's target is checked, read-only, before the first
	// change: a bad one stops the ceremony with nothing changed anywhere.
	if clouds != nil {
		if err := runner.CheckTargets(c.Context); err != nil {
			return err
		}
	}

	var rec *recorder
	var auditFP string // the audit key's fingerprint, for the paper script
	operator := c.String(flagOperator)
	if operator == "" {
		operator = strings.Join(f.Operators, "; ")
	}
	{
		var (
			signer *hsm.AuditSigner
			keyID  []byte
		)
		if f.AuditKey != nil {
			k, err := s.tok.FindAuditKey(hsm.KeySelector{Label: f.AuditKey.Label})
			if err != nil {
				return fmt.Errorf("audit key %q: %w (create it first with kmsbridge audit-key create)", f.AuditKey.Label, err)
			}
			if signer, err = s.tok.AuditSigner(k); err != nil {
				return err
			}
			keyID = k.ID
			auditFP = kmsimport.Fingerprint(signer.PublicKeyDER())
		}
		w, err := openRecordWriter(f.Record, signer, keyID)
		if err != nil {
			return err
		}
		w.Operator = operator
		rec = &recorder{w: w, command: "ceremony run", log: log, where: func() (kmsimport.Endpoint, bool) {
			if api == nil {
				return kmsimport.Endpoint{}, false
			}
			return api.Endpoint(), true
		},
			inputs: map[string]string{"CeremonyFile": f.Source(), "CeremonyFileSha256": f.Digest()}}
	}
	j.SetMirror(rec.journalEntry)
	runner.Halt = rec.failed
	if clouds != nil {
		clouds.record(rec)
	}
	rec.add("ceremony-start", map[string]string{"Operators": strings.Join(f.Operators, "; "), "Keys": fmt.Sprint(len(f.Keys))}, nil, &id)
	if err := rec.failed(); err != nil {
		return rec.close(fmt.Errorf("%w: %v; nothing was changed", kmsimport.ErrJournal, err))
	}
	runner.Observe = ceremony.LabelledObserver(rec.observer())
	if c.IsSet(flagParallel) {
		return ceremonyBulk(c, runner, f, rec, format, &id, auditFP)
	}

	outcomes, runErr := runner.RunKeys(c.Context, f.Keys)
	rec.add("ceremony-end", map[string]string{"KeysDone": fmt.Sprint(ceremony.CountDone(outcomes))}, runErr, &id)
	report := &ceremony.Report{CeremonyFileSha256: f.Digest(), Keys: outcomes, RecordHead: rec.w.Head(), RecordEntries: rec.w.Count(), RecordAuditKeySha256: auditFP}
	if api != nil {
		ep := api.Endpoint()
		report.KmsEndpoint = &ep
	}
	if err := rec.close(runErr); err != nil {
		return err
	}
	if format == "json" {
		return writeJSON(c.App.Writer, report)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Ceremony complete: %d keys.\n", len(outcomes))
	if report.KmsEndpoint != nil {
		fmt.Fprintf(w, "  KMS endpoint: %s\n", *report.KmsEndpoint)
	}
	for _, o := range outcomes {
		kmsID, summary := o.Summary()
		if o.Plan.Action == ceremony.ActionTargets {
			kmsID, summary = "(no AWS KMS part)", "sent to its targets only"
		}
		fmt.Fprintf(w, "  %-24s %-18s %s\n      %s\n", o.Plan.Key.HSMLabel, o.Plan.Key.KeySpec, kmsID, summary)
		writeTargets(w, o)
	}
	writePaperScript(w, report.Paper(f))
	return nil
}

// writePaperScript prints what the operators write on the paper script.
func writePaperScript(w io.Writer, p ceremony.PaperScript) {
	fmt.Fprintf(w, "\nWrite on the paper script:\n  record        %s\n  entries       %d\n  head SHA-256  %s\n", p.Record, p.Entries, p.Head)
	if p.AuditKey != "" {
		fmt.Fprintf(w, "  audit key     %s\n", p.AuditKey)
		fmt.Fprintf(w, "\nLater: kmsbridge record verify --expect-audit-key %s --expect-head %s --expect-count %d %s\n", p.AuditKey, p.Head, p.Entries, p.Record)
	} else {
		fmt.Fprintf(w, "  audit key     none: the record is unsigned, and record verify can check only its hash chain (--chain-only)\n")
	}
}

// printDryRun prints a dry run's plan and returns its problems.
func printDryRun(c *cliContext, d *ceremony.DryRun, f *ceremony.File, format string) error {
	if format == "json" {
		_ = writeJSON(c.App.Writer, map[string]any{"CeremonyFileSha256": f.Digest(), "Plan": d.Rows, "Problems": d.Problems})
	} else {
		w := c.App.Writer
		fmt.Fprintf(w, "Dry run of %s (SHA-256 %s): nothing was changed.\n", f.Source(), f.Digest())
		for i, r := range d.Rows {
			alias := r.Alias
			if r.Action == string(ceremony.ActionTargets) {
				alias = "no AWS KMS part"
			}
			fmt.Fprintf(w, "%d. %s (%s, %s)\n", i+1, r.Label, r.KeySpec, alias)
			if r.Problem != "" {
				fmt.Fprintf(w, "   PROBLEM: %s\n", r.Problem)
			} else {
				fmt.Fprintf(w, "   will: %s\n", r.Action)
			}
			if r.KMSKeyID != "" {
				fmt.Fprintf(w, "   KMS key %s (%s)\n", r.KMSKeyID, r.Why)
			}
			for _, t := range r.Targets {
				if t.Cloud == "aws" {
					continue // said above
				}
				if t.Problem != "" {
					fmt.Fprintf(w, "   %s %s: PROBLEM: %s\n", t.Cloud, t.Target, t.Problem)
				} else {
					fmt.Fprintf(w, "   %s %s: will: %s\n", t.Cloud, t.Target, t.Action)
				}
			}
		}
	}
	return d.Err()
}

// openRecordWriter opens the ceremony record for appending.
func openRecordWriter(path string, signer *hsm.AuditSigner, id []byte) (*record.Writer, error) {
	var w *record.Writer
	var err error
	if signer != nil {
		w, err = record.Open(path, signer, id)
	} else {
		w, err = record.Open(path, nil, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", kmsimport.ErrInvalidInput, err)
	}
	return w, nil
}
