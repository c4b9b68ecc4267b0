package main

import (
	"io"
	"log/slog"

	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// cloudRun is what every cloud's importer is given from the command line:
// the token, the journal of the cloud target, the ceremony record's hooks
// and the ownership authority (with --adopt).
type cloudRun struct {
	Token   kmsimport.Token
	Journal *journal.Journal
	Log     *slog.Logger
	Observe func(kmsimport.StepEvent)
	Halt    func() error
	Owner   *ownership.Authority
}

// summarizer is an import's result, printed for people.
type summarizer interface{ WriteSummary(io.Writer) }

// legacyScoped is a target whose journal earlier versions named
// otherwise (AWS KMS: by Region, endpoint and profile, before the
// account was part of the name); the journal adopts those names.
type legacyScoped interface {
	JournalScope() (target string, legacy []string, err error)
}

// runCloudImport is the wiring an import into AWS KMS, Google Cloud KMS or
// Azure Key Vault shares once its request is built and its client open: it
// opens the token, the ceremony record (with target's inputs), the
// journal of target's account and place, and runs the import with them;
// the result is printed as --output asks.
func runCloudImport(c *cliContext, format string, log *slog.Logger, target kmsimport.Adapter, run func(cloudRun) (summarizer, error)) error {
	s, err := openToken(c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	inputs := target.RecordInputs()
	if c.Bool(flagAdopt) {
		inputs["Adopt"] = "true"
	}
	rec, err := s.openRecorder(c, "import", inputs, log)
	if err != nil {
		return err
	}
	serial := s.tok.Identity().Serial
	scope := journal.Scope{TokenSerial: serial, Target: target.JournalTarget()}
	if ls, ok := target.(legacyScoped); ok {
		if scope.Target, scope.Legacy, err = ls.JournalScope(); err != nil {
			return rec.close(err)
		}
	}
	j, err := openJournalScope(c, scope, rec)
	if err != nil {
		return rec.close(err)
	}
	defer j.Close()
	res, err := run(cloudRun{Token: s.tok, Journal: j, Log: log, Observe: rec.observer(), Halt: rec.failed, Owner: ownerFor(c, serial, j, "import")})
	return printResult(c, format, res, rec.close(err))
}
