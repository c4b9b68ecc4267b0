package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
)

// renewCloudFlags choose renew's cloud: AWS KMS (default), or one Key
// Vault key whose exp moves.
func renewCloudFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagCloud, Value: "aws", Usage: "the cloud of the keys to renew: aws, or azure (one Key Vault key's exp, --vault-url and --key-name)"},
		&cli.StringFlag{Name: flagVaultURL, Category: catAzure, Usage: "the vault, `URL` https://NAME.vault.azure.net (or, for your own endpoint, --endpoint-url URL --allow-endpoint URL)"},
		&cli.StringFlag{Name: flagKeyName, Category: catAzure, Usage: "the Key Vault key `NAME` whose expiry (exp) moves"},
	}
}

// awsOnlyRenewFlags mean nothing to a Key Vault renewal.
var awsOnlyRenewFlags = []string{flagKMSKeyID, flagKeyLabel, flagReplicaRegion, flagWrappingKeySpec, flagMaxKeys, flagAdopt, flagRegion, flagProfile}

// runAzureRenew is renew --cloud azure: Key Vault keeps the imported
// material whatever exp says, so renewing is moving exp (UpdateKey),
// after proving the key is this token's HSM key's copy.
func runAzureRenew(c *cliContext) error {
	format, log, err := setup(c)
	if err != nil {
		return err
	}
	for _, f := range awsOnlyRenewFlags {
		if c.IsSet(f) {
			return usageError{fmt.Sprintf("--%s is an AWS KMS flag and means nothing with --cloud azure: name the key with --vault-url and --key-name", f)}
		}
	}
	if c.String(flagKeyName) == "" {
		return usageError{"renew --cloud azure needs --key-name NAME, the Key Vault key whose expiry moves"}
	}
	if !tokenGiven(c) {
		return usageError{"renew proves the key against the HSM key it was imported from: choose the token with --token-label, --token-serial or --slot"}
	}
	if c.Int(flagWithin) < 0 || c.Int(flagWithin) > 3650 {
		return usageError{fmt.Sprintf("--within %d: give 0 to 3650 days", c.Int(flagWithin))}
	}
	req := azure.RenewRequest{KeyName: c.String(flagKeyName), WithinDays: c.Int(flagWithin), DryRun: c.Bool(flagDryRun)}
	var allowed []string
	if e := c.String(flagAllowEndpoint); e != "" {
		allowed = []string{e}
	}
	if req.Vault, err = azure.VaultURL(c.String(flagVaultURL), c.String(flagEndpointURL), allowed); err != nil {
		return err
	}
	e, err := parseExpiry(c)
	if err != nil {
		return err
	}
	switch {
	case e.NoExpiry && (!e.ValidTo.IsZero() || c.IsSet(flagValidFor)):
		return usageError{"--no-expiry and --valid-to/--valid-for both given: choose one"}
	case !e.ValidTo.IsZero() && c.IsSet(flagValidFor):
		return usageError{"--valid-for and --valid-to both given: choose one"}
	case e.NoExpiry:
	case !e.ValidTo.IsZero():
		req.Expires = &e.ValidTo
	default:
		t := time.Now().Add(validForOf(c, c.App.ErrWriter)).UTC().Truncate(time.Second)
		req.Expires = &t
	}
	api, _, err := azure.NewClientAt(req.Vault, azureAllowedEndpoints(c))
	if err != nil {
		return err
	}
	s, err := openToken(c, log)
	if err != nil {
		return err
	}
	defer s.Close()
	in := map[string]string{"Cloud": "azure", "Vault": req.Vault, "KeyName": req.KeyName, "Within": fmt.Sprint(req.WithinDays), "DryRun": fmt.Sprint(req.DryRun), "Expires": "never"}
	if req.Expires != nil {
		in["Expires"] = req.Expires.Format(time.RFC3339)
	}
	rec, err := s.openRecorder(c, "renew", in, log)
	if err != nil {
		return err
	}
	j, err := openJournalFor(c, s.tok.Identity().Serial, azure.JournalTarget(req.Vault), rec)
	if err != nil {
		return rec.close(err)
	}
	defer j.Close()
	im := &azure.Importer{Token: s.tok, Journal: j, Log: log, Command: "renew"}
	res, err := im.Renew(c.Context, api, req)
	if err == nil {
		rec.add("renew-azure", map[string]string{"KeyId": res.KeyID, "Renewed": fmt.Sprint(res.Renewed), "Reason": res.Reason, "ProofSummary": res.Proof.Summary}, nil, &res.HSM.Token)
	}
	err = rec.close(err)
	switch {
	case format == "json" && err != nil:
		_ = writeJSON(c.App.Writer, map[string]any{"Error": err.Error(), "ExitCode": exitCode(err), "Partial": res})
	case format == "json":
		return writeJSON(c.App.Writer, res)
	case err == nil:
		fmt.Fprintf(c.App.Writer, "Key Vault key %s: %s\n  proof: %s\n", res.KeyID, res.Reason, res.Proof.Summary)
	}
	return err
}
