package main

import (
	"io"
	"log/slog"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// openRegionsAndToken makes the KMS clients (home Region first, then each
// --replica-region) and then opens the token, for renew and rotate.
func openRegionsAndToken(c *cliContext, log *slog.Logger) ([]awskms.Regional, *session, error) {
	regions, err := kmsClients(c)
	if err != nil {
		return nil, nil, err
	}
	s, err := openToken(c, log)
	if err != nil {
		return nil, nil, err
	}
	return regions, s, nil
}

// changeImporter returns the Importer that renew and rotate run with, in
// the home Region (regions[0]). Unless dryRun it first opens the run's
// record (command, inputs) and the journal; the caller closes the record
// with rec.close and defers closeJournal (a no-op on a dry run). On an
// error everything it opened is closed and err says why.
func (s *session) changeImporter(c *cliContext, log *slog.Logger, regions []awskms.Regional, command string, inputs map[string]string, dryRun bool) (im *awskms.Importer, rec *recorder, closeJournal func(), err error) {
	closeJournal = func() {}
	if !dryRun {
		if rec, err = s.openRecorder(c, command, inputs, log); err != nil {
			return nil, nil, closeJournal, err
		}
	}
	im = &awskms.Importer{KMS: regions[0].KMS, Token: s.tok, Log: log, Observe: rec.observer(), Command: command}
	// A dry run reads the journal too: the ownership authority decides
	// from it what is kmsbridge's, and a dry run must decide as the run
	// would. It writes nothing to it.
	j, err := openJournal(c, s.tok.Identity().Serial, regions[0].Region, rec)
	if err != nil {
		return nil, nil, closeJournal, rec.close(err)
	}
	closeJournal = func() { _ = j.Close() }
	owner := ownerFor(c, s.tok.Identity().Serial, j, command)
	if dryRun {
		owner.DryRun = true // decides as the run would, records nothing
		im.Owner = owner
		return im, rec, closeJournal, nil
	}
	im.Journal, im.Halt, im.Owner = j, rec.failed, owner
	return im, rec, closeJournal, nil
}

// writeChangeResult writes what renew or rotate did and returns err: in
// JSON the result, or on failure the error, its exit code and the partial
// result; in text the summary when summarize says there is one to write.
func writeChangeResult(c *cliContext, format string, res interface{ WriteSummary(io.Writer) }, summarize bool, err error) error {
	switch {
	case format == "json" && err != nil:
		_ = writeJSON(c.App.Writer, map[string]any{"Error": err.Error(), "ExitCode": exitCode(err), "Partial": res})
	case format == "json":
		return writeJSON(c.App.Writer, res)
	case summarize:
		res.WriteSummary(c.App.Writer)
	}
	return err
}
