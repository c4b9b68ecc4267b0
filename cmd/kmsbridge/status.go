package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

const (
	flagWarnDays = "warn-days"
	flagNoKMS    = "no-kms"
	flagMaxKeys  = "max-keys"
	flagVerify   = "verify"
	flagTextfile = "textfile"
	flagColumns  = "columns"
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
  # a narrow table: what expires when
  kmsbridge status --token-label ceremony --columns hsm-key,kms-key,alias,valid-to,days
  # every target of a multi-cloud ceremony: Cloud KMS versions, Key Vault keys
  kmsbridge status --token-label ceremony --targets payments-2026.yaml
  # with a token, the Cloud KMS and Key Vault targets this host's journals
  # show (import --cloud gcp|azure, ceremonies) are listed without a file;
  # those imported through an endpoint of your own are read when named:
  kmsbridge status --token-label ceremony --allow-target-endpoint https://127.0.0.1:8443
  # node_exporter textfile collector, from cron or a systemd timer
  # (docs/systemd/): written atomically, and with kmsbridge_status_up 0
  # and the error when status cannot run, so an alert fires:
  kmsbridge status --token-label ceremony --region eu-west-1 \
    --textfile /var/lib/node_exporter/textfile/kmsbridge-ceremony.prom`,
		Flags: append(append(hsmFlags(), kmsFlags()...),
			&cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Category: catOutput, Value: "text", Usage: "text, json or prometheus (node_exporter textfile format)"},
			&cli.StringFlag{Name: flagLogLevel, Category: catOutput, Value: "info", Usage: "progress log on stderr: debug, info, warn, error"},
			&cli.StringFlag{Name: flagLogFormat, Category: catOutput, Value: "text", Usage: "progress log format: text (key=value) or json (one object per line)"},
			&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Category: catOutput, Usage: "no progress log: only warnings and errors on stderr"},
			replicaRegionFlag("also read this Region (repeatable): where multi-Region replicas live"),
			&cli.IntFlag{Name: flagWarnDays, Value: 30, Usage: "material expiring within `DAYS` is a problem (exit 6)"},
			&cli.BoolFlag{Name: flagNoKMS, Category: catKMS, Usage: "read the token only"},
			&cli.IntFlag{Name: flagMaxKeys, Category: catKMS, Value: awskms.DefaultMaxKeys, Usage: "read at most `N` KMS keys per Region"},
			&cli.BoolFlag{Name: flagVerify, Usage: "prove each linked KMS key against its HSM key (needs the token; read-only)"},
			&cli.StringFlag{Name: flagColumns, Category: catOutput, Usage: "the table's columns, comma-separated, in order (default all): " + strings.Join(awskms.StatusColumns, ",")},
			targetsFlag(),
			allowTargetEndpointFlag(), fromRecordFlag(), fromRecordChainOnlyFlag(), stateDirFlag(),
			&cli.StringFlag{Name: flagTextfile, Category: catOutput, Usage: "also write the Prometheus metrics to `FILE` atomically (node_exporter's textfile collector), with kmsbridge_status_up 0 and the error when status cannot run"},
		),
		OnUsageError: onUsageError,
		Action:       action(runStatus),
	}
}

// runStatus runs status and, with --textfile, always leaves a metrics
// file behind: the inventory when status ran, or kmsbridge_status_up 0
// with the error when it could not, so monitoring never goes silent.
func runStatus(c *cliContext) error {
	path := c.String(flagTextfile)
	if path != "" && !strings.HasSuffix(path, ".prom") {
		return usageError{fmt.Sprintf("--textfile %q: node_exporter reads only files ending in .prom; name it e.g. /var/lib/node_exporter/textfile/kmsbridge.prom", path)}
	}
	st, err := status(c)
	if path == "" {
		return err
	}
	scope := statusScope(c)
	reg := awskms.FailureMetrics(scope, time.Now(), fmt.Sprint(err))
	if st != nil {
		reg = st.Metrics(scope)
	}
	if werr := prometheus.WriteToTextfile(path, reg); werr != nil {
		werr = usageError{fmt.Sprintf("--textfile %s: %v: check that the directory exists and is writable", path, werr)}
		if err == nil {
			return werr
		}
		return fmt.Errorf("%w (and the textfile could not be written: %v)", err, werr)
	}
	return err
}

// statusScope names the run in every series: the token and Region as the
// operator chose them.
func statusScope(c *cliContext) awskms.StatusScope {
	var sc awskms.StatusScope
	switch {
	case c.String(flagTokenSerial) != "":
		sc.Token = "serial=" + c.String(flagTokenSerial)
	case c.String(flagTokenLabel) != "":
		sc.Token = "label=" + c.String(flagTokenLabel)
	case c.IsSet(flagSlot):
		sc.Token = "slot=" + fmt.Sprint(c.Value(flagSlot))
	}
	if !c.Bool(flagNoKMS) {
		sc.Region = c.String(flagRegion)
		// No --region: the Region the KMS client resolved (AWS_REGION or
		// the profile's), so the series say which Region they are about.
		if client, ok := c.App.Metadata[mdKMSClient].(*awskms.Client); ok && sc.Region == "" {
			sc.Region = client.Options().Region
		}
	}
	return sc
}

// givenFlags lists the named flags the operator set, as they were given,
// for the commands status prints to carry.
func givenFlags(c *cliContext, names ...string) []string {
	var out []string
	for _, n := range names {
		if !c.IsSet(n) {
			continue
		}
		switch v := c.Value(n).(type) {
		case []string:
			for _, s := range v {
				out = append(out, "--"+n, s)
			}
		default:
			out = append(out, "--"+n, fmt.Sprint(v))
		}
	}
	return out
}

func status(c *cliContext) (*awskms.Status, error) {
	if c.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected argument %q: kmsbridge status takes only flags", c.Args().First())}
	}
	format := c.String(flagOutput)
	switch format {
	case "text", "json", "prometheus":
	default:
		return nil, usageError{fmt.Sprintf("--output %q: choose text, json or prometheus", format)}
	}
	log, err := newLogger(c)
	if err != nil {
		return nil, err
	}
	if c.Int(flagWarnDays) < 0 || c.Int(flagWarnDays) > 365 {
		return nil, usageError{fmt.Sprintf("--warn-days %d: give a number of days from 0 to 365", c.Int(flagWarnDays))}
	}
	if c.Int(flagMaxKeys) < 1 {
		return nil, usageError{fmt.Sprintf("--max-keys %d: give at least 1", c.Int(flagMaxKeys))}
	}
	var cols []string
	if c.String(flagColumns) != "" {
		cols = strings.Split(c.String(flagColumns), ",")
		if err := awskms.CheckStatusColumns(cols); err != nil {
			return nil, err
		}
	}
	if c.Bool(flagNoKMS) && !tokenGiven(c) {
		return nil, usageError{"--no-kms reads the token only, but no token was chosen: give --token-label, --token-serial or --slot"}
	}
	if len(c.StringSlice(flagFromRecord)) > 0 && (!tokenGiven(c) || c.Bool(flagNoKMS)) {
		return nil, usageError{"--from-record finds the targets of the token's HSM keys: give a token (--token-label ...) and leave out --no-kms"}
	}
	if c.Bool(flagFromRecordChainOnly) && len(c.StringSlice(flagFromRecord)) == 0 {
		return nil, usageError{"--" + flagFromRecordChainOnly + " is about the records given with --from-record: give --from-record FILE or leave it out"}
	}
	if c.Bool(flagVerify) && (!tokenGiven(c) || c.Bool(flagNoKMS)) {
		return nil, usageError{"--verify proves KMS keys against the token: give a token (--token-label ...) and leave out --no-kms"}
	}
	if err := checkTargetEndpoints(c.StringSlice(flagAllowTargetEndpoint)); err != nil {
		return nil, err
	}
	o := awskms.StatusOptions{WarnDays: c.Int(flagWarnDays), MaxKeys: c.Int(flagMaxKeys), Verify: c.Bool(flagVerify), Log: log,
		TokenFlags: givenFlags(c, flagModule, flagTokenLabel, flagTokenSerial, flagSlot),
		KMSFlags:   givenFlags(c, flagRegion, flagProfile, flagEndpointURL, flagAllowEndpoint, flagCABundle, flagReplicaRegion)}
	if !c.Bool(flagNoKMS) {
		if o.KMS, err = kmsClients(c); err != nil {
			return nil, err
		}
	}
	var approvals func() ([]hsm.Approval, error) // the token's, when one is open
	if tokenGiven(c) {
		s, err := openToken(c, log)
		if err != nil {
			return nil, err
		}
		defer s.Close()
		o.Token = s.tok
		approvals = s.tok.Approvals
	}
	st, err := awskms.ReadStatus(c.Context, o)
	if err != nil {
		return nil, err
	}
	var targets []kmsimport.StatusTarget
	if path := c.String(flagTargets); path != "" {
		if targets, err = statusTargets(c.Context, path, o.Token); err != nil {
			return nil, err
		}
	}
	// Every other target of the token's HSM keys, from this host's
	// journals: import --cloud gcp|azure and ceremonies alike.
	if o.Token != nil && !c.Bool(flagNoKMS) {
		dir, err := stateDir(c)
		if err != nil {
			return nil, err
		}
		known := map[string]bool{}
		for _, t := range targets {
			known[t.Cloud+" "+targetKeyName(t)] = true
		}
		serial := o.Token.Identity().Serial
		fromRecords, err := discoverFromRecords(c.StringSlice(flagFromRecord), serial, c.Bool(flagFromRecordChainOnly))
		if err != nil {
			return nil, err
		}
		found := mergeDiscovered(discoverTargets(c.Context, dir, serial, log), fromRecords)
		targets = append(targets, readDiscovered(c.Context, found, serial, c.StringSlice(flagAllowTargetEndpoint), known)...)
	}
	if len(targets) > 0 {
		st.AddTargets(targets)
	}
	if approvals != nil {
		if st.OutstandingApprovals, err = approvals(); err != nil {
			return st, err
		}
	}
	switch format {
	case "json":
		if err := writeJSON(c.App.Writer, st); err != nil {
			return st, err
		}
	case "prometheus":
		if err := awskms.WritePrometheus(c.App.Writer, st.Metrics(statusScope(c))); err != nil {
			return st, err
		}
	default:
		st.WriteTable(c.App.Writer, cols...)
		printApprovals(c.App.Writer, st.OutstandingApprovals)
	}
	switch st.Health {
	case awskms.HealthBroken:
		return st, verdictError{exitBroken, fmt.Sprintf("status: broken: %d problem(s) need repair (exit %d)", len(st.Problems), exitBroken)}
	case awskms.HealthExpiring:
		return st, verdictError{exitExpiring, fmt.Sprintf("status: key material expires within %d days or a rotation is pending (exit %d)", o.WarnDays, exitExpiring)}
	}
	return st, nil
}
