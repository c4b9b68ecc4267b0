package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
)

const (
	flagFrom     = "from"
	flagParallel = "parallel"
	catBulk      = "Bulk import"
)

// fromFlag is import's --from.
func fromFlag() cli.Flag {
	return &cli.StringFlag{Name: flagFrom, Category: catBulk, Usage: "import every key listed in `FILE` (.csv with a header row, or .yaml: a list of keys with the fields of a ceremony file's keys) instead of one key from the flags"}
}

// parallelFlag is --parallel for import --from and ceremony run.
func parallelFlag() cli.Flag {
	return &cli.IntFlag{Name: flagParallel, Category: catBulk, Value: 4, Usage: "import up to `N` keys at once; each key's failure is its own and the others go on"}
}

// perKeyFlags are import's flags that --from takes from the file instead.
// --multi-region and --replica-region are refused with --from rather than
// applied to every key: each key of the list says whether it is
// multi-Region and where its replicas go (multi-region, replica-regions).
var perKeyFlags = []string{flagKeyLabel, flagHSMKeyID, flagGenerate, flagKeySpec, flagKeyUsage, flagKMSKeyID, flagAlias, flagDescription, flagTag, flagValidTo, flagNoExpiry, flagWrappingAlgorithm, flagWrappingKeySpec, flagMultiRegion, flagReplicaRegion}

// notWithFrom are import's flags that a bulk run does not apply: refused,
// never ignored.
var notWithFrom = map[string]string{
	flagKeyURI:            "the key list names each key by its hsm-label",
	flagAllowNonSensitive: "a bulk run imports only sensitive keys; import such a key on its own with --allow-non-sensitive",
	flagAllowSecondKMSKey: "a bulk run never makes a second KMS key for an HSM key; do that key on its own with --allow-second-kms-key",
}

// runBulkImport is import --from FILE.
func runBulkImport(c *cliContext) error {
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	for _, name := range perKeyFlags {
		if c.IsSet(name) {
			field := name
			if name == flagReplicaRegion {
				field = "replica-regions (Regions separated by ; in CSV)"
			}
			return usageError{fmt.Sprintf("--%s and --from both given: with --from every key's fields come from the file; put %s in a column (CSV) or field (YAML) of the key list", name, field)}
		}
	}
	for name, why := range notWithFrom {
		if c.IsSet(name) {
			return usageError{fmt.Sprintf("--%s does not apply to import --from: %s", name, why)}
		}
	}
	if _, err := tokenSelector(c); err != nil {
		return err
	}
	parallel := c.Int(flagParallel)
	if parallel < 1 || parallel > hsm.MaxSessions {
		return usageError{fmt.Sprintf("--parallel %d: give 1 to %d", parallel, hsm.MaxSessions)}
	}
	f, err := ceremony.LoadKeys(c.String(flagFrom), time.Now())
	if err != nil {
		return err
	}
	log.Info("key list loaded", "file", f.Source(), "sha256", f.Digest(), "keys", len(f.Keys), "parallel", parallel)
	api, region, err := kmsClientRegion(c)
	if err != nil {
		return err
	}
	// The list's multi-Region keys are replicated with this command's
	// profile, endpoint, endpoint opt-in and CA bundle, from the home
	// Region: the same endpoint policy as the home Region's client. The
	// flags are the operator's, not a file's.
	f.KMS.Region, f.KMS.Profile, f.KMS.Endpoint = region, c.String(flagProfile), c.String(flagEndpointURL)
	f.KMS.AllowEndpoint, f.KMS.CABundle = c.String(flagAllowEndpoint), c.String(flagCABundle)
	for i, k := range f.Keys {
		for _, r := range k.ReplicaRegions {
			if r == region {
				return usageError{fmt.Sprintf("%s: keys[%d] (%s) lists %s in replica-regions, which is the home Region of this run (--region): list only the other Regions", f.Source(), i, k.HSMLabel, r)}
			}
		}
	}
	replicas, err := ceremony.ReplicaClients(c.Context, f)
	if err != nil {
		return err
	}
	s, err := openToken(c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	ev, err := ceremony.RecordEvidence(c.String(flagRecord))
	if err != nil {
		return err
	}
	rec, err := s.openRecorder(c, "import --from", map[string]string{"KeyList": f.Source(), "KeyListSha256": f.Digest()}, log)
	if err != nil {
		return err
	}
	// The journal, as for one import: intents before every change, and its
	// lock keeps other kmsbridge runs off this token and KMS target.
	j, err := openJournal(c, s.tok.Identity().Serial, region, rec)
	if err != nil {
		return rec.close(err)
	}
	defer j.Close()
	runner := &ceremony.Runner{File: f, Clouds: ceremony.Clouds{AWS: ceremony.AWSClients{KMS: api, Replicas: replicas}}, Token: s.tok, Generated: ev.Generated, RecordKMS: ev.KMSKeys, RecordAttempts: ev.Attempts, Journal: j, Halt: rec.failed}
	sum := runBulk(c, runner, f.Keys, parallel, rec)
	err = rec.close(sum.Err())
	return printBulk(c, format, sum, nil, err)
}

// runBulk runs keys with a progress display, recording each key's steps.
func runBulk(c *cliContext, runner *ceremony.Runner, keys []ceremony.Key, parallel int, rec *recorder) *ceremony.BulkSummary {
	// The workers' entries are written at once; each waits for an fsync
	// only at an intent (before the change it announces) and before its
	// key is reported (Durable), instead of after every entry.
	rec.deferDurability(runner.Journal)
	runner.Durable = func() error { return errors.Join(runner.Journal.Sync(), rec.sync()) }
	runner.Observe = ceremony.LabelledObserver(rec.observer())
	// Each key's steps go to the record; the screen shows keys.
	runner.Log = nil
	prog := newProgress(c.App.ErrWriter, len(keys))
	sum := runner.RunAll(c.Context, keys, parallel, prog.keyDone)
	prog.finish()
	return sum
}

// ceremonyBulk is ceremony run --parallel N: the keys run in parallel, the
// record gets every key's steps, and the run ends with the summary.
func ceremonyBulk(c *cliContext, runner *ceremony.Runner, f *ceremony.File, rec *recorder, format string, id *hsm.TokenIdentity, auditFP string) error {
	parallel := c.Int(flagParallel)
	if parallel < 1 || parallel > hsm.MaxSessions {
		return rec.close(usageError{fmt.Sprintf("--parallel %d: give 1 to %d", parallel, hsm.MaxSessions)})
	}
	sum := runBulk(c, runner, f.Keys, parallel, rec)
	runErr := sum.Err()
	rec.add("ceremony-end", map[string]string{"KeysDone": fmt.Sprint(sum.Done)}, runErr, id)
	head, count := rec.w.Head(), rec.w.Count()
	err := rec.close(runErr)
	extra := map[string]any{"CeremonyFileSha256": f.Digest(), "RecordHead": head, "RecordEntries": count}
	if auditFP != "" {
		extra["RecordAuditKeySha256"] = auditFP
	}
	if perr := printBulk(c, format, sum, extra, err); perr != err {
		return perr
	}
	if format != "json" {
		writePaperScript(c.App.Writer, ceremony.PaperScript{Record: f.Record, Entries: count, Head: head, AuditKey: auditFP})
	}
	return err
}

// printBulk prints the summary table (text) or JSON, and returns err.
func printBulk(c *cliContext, format string, sum *ceremony.BulkSummary, extra map[string]any, err error) error {
	if format == "json" {
		out := map[string]any{"Summary": sum}
		for k, v := range extra {
			out[k] = v
		}
		if err != nil {
			out["Error"], out["ExitCode"] = err.Error(), exitCode(err)
		}
		if werr := writeJSON(c.App.Writer, out); werr != nil && err == nil {
			return werr
		}
		return err
	}
	writeBulkTable(c.App.Writer, sum)
	return err
}

// writeBulkTable prints one row per key and the totals.
func writeBulkTable(w io.Writer, sum *ceremony.BulkSummary) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tHSM LABEL\tKEY SPEC\tSTATUS\tKMS KEY\tSECONDS\tDETAIL")
	for _, r := range sum.Results {
		detail := r.Summary
		if r.Status != ceremony.StatusDone {
			detail = firstLine(r.Error)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%.2f\t%s\n", r.Index, r.HSMLabel, r.KeySpec, r.Status, r.KMSKeyID, r.Seconds, detail)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d keys: %d done, %d failed, %d not started, in %.1f s at parallelism %d (%.2f keys/s).\n",
		sum.Keys, sum.Done, sum.Failed, sum.NotStarted, sum.Seconds, sum.Parallel, sum.KeysPerSecond)
}
