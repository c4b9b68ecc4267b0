package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

const (
	flagWarnDays = "warn-days"
	flagNoKMS    = "no-kms"
	flagMaxKeys  = "max-keys"
	flagVerify   = "verify"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "inventory: which HSM key backs which KMS key and material, when each expires, and what needs doing",
		Description: `Joins the token's keys and the KMS keys kmsbridge linked to them (by the
kmsbridge:hsm-key-id, kmsbridge:token-serial and kmsbridge:material:* tags)
into one table: HSM key (label, CKA_ID, PKCS#11 URI), KMS key, Region, alias,
key spec, state, every key material (KeyMaterialId, CURRENT / NON_CURRENT /
PENDING_ROTATION, ValidTo, days left, the HSM key that backs it) and, with
--verify, the proof that KMS holds the HSM's material.

Problems it reports: a KMS key linked to an HSM key the token lacks; an HSM
key linked to two KMS keys; material expiring within --warn-days; a
PendingImport key (expired or deleted material); a rotation left pending.

Give no token flags to read the KMS side only; --no-kms for the token side
only. Reading KMS costs one ListResourceTags call per key in each Region,
bounded by --max-keys, with progress on stderr. status changes nothing.

Exit codes: 0 ok; 6 material expires within --warn-days or a rotation is
pending; 7 broken (missing HSM key, key linked twice, PendingImport key,
failed verification, inventory incomplete); 2-4 as for every command when
status could not run.

Examples:
  kmsbridge status --token-label ceremony --region eu-west-1 --warn-days 45
  kmsbridge status --region eu-west-1 --output json | jq '.Problems'
  # node_exporter textfile collector, from cron:
  kmsbridge status --region eu-west-1 --output prometheus > /var/lib/node_exporter/kmsbridge.prom.$$ \
    ; mv /var/lib/node_exporter/kmsbridge.prom.$$ /var/lib/node_exporter/kmsbridge.prom`,
		Flags: append(append(hsmFlags(), kmsFlags()...),
			&cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Category: catOutput, Value: "text", Usage: "text, json or prometheus (node_exporter textfile format)"},
			&cli.StringFlag{Name: flagLogLevel, Category: catOutput, Value: "info", Usage: "progress log on stderr: debug, info, warn, error"},
			replicaRegionFlag("also read this Region (repeatable): where multi-Region replicas live"),
			&cli.IntFlag{Name: flagWarnDays, Value: 30, Usage: "material expiring within `DAYS` is a problem (exit 6)"},
			&cli.BoolFlag{Name: flagNoKMS, Category: catKMS, Usage: "read the token only"},
			&cli.IntFlag{Name: flagMaxKeys, Category: catKMS, Value: kmsimport.DefaultMaxKeys, Usage: "read at most `N` KMS keys per Region"},
			&cli.BoolFlag{Name: flagVerify, Usage: "prove each linked KMS key against its HSM key (needs the token; read-only)"},
		),
		OnUsageError: onUsageError,
		Action:       runStatus,
	}
}

func runStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q: kmsbridge status takes only flags", c.Args().First())}
	}
	format := c.String(flagOutput)
	switch format {
	case "text", "json", "prometheus":
	default:
		return usageError{fmt.Sprintf("--output %q: choose text, json or prometheus", format)}
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	if c.Int(flagWarnDays) < 0 || c.Int(flagWarnDays) > 365 {
		return usageError{fmt.Sprintf("--warn-days %d: give a number of days from 0 to 365", c.Int(flagWarnDays))}
	}
	if c.Int(flagMaxKeys) < 1 {
		return usageError{fmt.Sprintf("--max-keys %d: give at least 1", c.Int(flagMaxKeys))}
	}
	if c.Bool(flagNoKMS) && !tokenGiven(c) {
		return usageError{"--no-kms reads the token only, but no token was chosen: give --token-label, --token-serial or --slot"}
	}
	if c.Bool(flagVerify) && (!tokenGiven(c) || c.Bool(flagNoKMS)) {
		return usageError{"--verify proves KMS keys against the token: give a token (--token-label ...) and leave out --no-kms"}
	}
	o := kmsimport.StatusOptions{WarnDays: c.Int(flagWarnDays), MaxKeys: c.Int(flagMaxKeys), Verify: c.Bool(flagVerify), Log: log}
	if !c.Bool(flagNoKMS) {
		if o.KMS, err = kmsClients(c); err != nil {
			return err
		}
	}
	var approvals func() ([]hsm.Approval, error) // the token's, when one is open
	if tokenGiven(c) {
		s, err := openToken(c, log)
		if err != nil {
			return err
		}
		defer s.Close()
		o.Token = s.tok
		approvals = s.tok.Approvals
	}
	st, err := kmsimport.ReadStatus(c.Context, o)
	if err != nil {
		return err
	}
	if approvals != nil {
		if st.OutstandingApprovals, err = approvals(); err != nil {
			return err
		}
	}
	switch format {
	case "json":
		if err := writeJSON(c.App.Writer, st); err != nil {
			return err
		}
	case "prometheus":
		st.WritePrometheus(c.App.Writer)
	default:
		st.WriteTable(c.App.Writer)
		printApprovals(c.App.Writer, st.OutstandingApprovals)
	}
	switch st.Health {
	case kmsimport.HealthBroken:
		return verdictError{exitBroken, fmt.Sprintf("status: broken: %d problem(s) need repair (exit %d)", len(st.Problems), exitBroken)}
	case kmsimport.HealthExpiring:
		return verdictError{exitExpiring, fmt.Sprintf("status: key material expires within %d days or a rotation is pending (exit %d)", o.WarnDays, exitExpiring)}
	}
	return nil
}
