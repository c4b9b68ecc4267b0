package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

const (
	flagCeremony    = "ceremony"
	flagCeremonyKey = "key"
)

// ceremonyFlags let the split commands take their settings from a
// ceremony file: --ceremony FILE --key HSM-LABEL.
func ceremonyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagCeremony, Category: "Ceremony file", Usage: "take settings from the ceremony `FILE` (flags given on the command line win)"},
		&cli.StringFlag{Name: flagCeremonyKey, Category: "Ceremony file", Usage: "the key of the ceremony file, by its hsm-label `LABEL`; or an HSM key by PKCS#11 URI (pkcs11:...)"},
	}
}

// applyCeremony fills every flag the user did not give from the ceremony
// file's settings for --key: the HSM, KMS, record and audit key, and the
// key's spec, alias, wrapping and expiry. It does nothing without
// --ceremony.
func applyCeremony(c *cliContext) error {
	path := c.String(flagCeremony)
	if k := c.String(flagCeremonyKey); hsm.HasScheme(k) || hsm.HasPINValue(k) {
		if path != "" {
			return usageError{"--key with a pkcs11: URI names an HSM key; a key of a ceremony file is named by its hsm-label"}
		}
		return nil
	}
	if path == "" {
		if c.String(flagCeremonyKey) != "" {
			return usageError{"--key names a key of a ceremony file: give --ceremony FILE too"}
		}
		return nil
	}
	f, err := ceremony.Load(path, time.Now())
	if err != nil {
		return err
	}
	label := c.String(flagCeremonyKey)
	var key *ceremony.Key
	var labels []string
	for i := range f.Keys {
		labels = append(labels, f.Keys[i].HSMLabel)
		if f.Keys[i].HSMLabel == label {
			key = &f.Keys[i]
		}
	}
	if key == nil {
		return usageError{fmt.Sprintf("--key %q is not a key of %s: choose one of %s", label, path, strings.Join(labels, ", "))}
	}
	if !f.GoesToAWS(*key) {
		return fmt.Errorf("%w: --key %q of %s does not go to AWS KMS (aws: false, or the file has no kms section), and --ceremony carries a key's AWS KMS part only: send it to its targets with kmsbridge ceremony run %s, or with import --cloud gcp|azure", kmsimport.ErrInvalidInput, label, path, path)
	}
	settings := map[string]string{
		flagModule: f.HSM.Module, flagModuleParams: f.HSM.ModuleParams,
		flagTokenLabel: f.HSM.Token.Label, flagTokenSerial: f.HSM.Token.Serial,
		flagRegion: f.KMS.Region, flagProfile: f.KMS.Profile, flagEndpointURL: f.KMS.Endpoint,
		flagAllowEndpoint: f.KMS.AllowEndpoint, flagCABundle: f.KMS.CABundle,
		flagRecord:   f.Record,
		flagKeyLabel: key.HSMLabel, flagKMSKeyID: key.KMSKeyID, flagKeySpec: key.KeySpec, flagKeyUsage: key.KeyUsage,
		flagAlias: key.Alias, flagDescription: key.Description,
		flagWrappingAlgorithm: key.WrappingAlgorithm, flagWrappingKeySpec: key.WrappingKeySpec,
		flagValidTo: key.ValidTo,
	}
	if f.HSM.Token.Slot != nil {
		settings[flagSlot] = fmt.Sprint(*f.HSM.Token.Slot)
	}
	if f.AuditKey != nil {
		settings[flagAuditKey] = f.AuditKey.Label
		settings[flagAuditPublicKey] = f.AuditKey.PublicKey
	}
	if key.NoExpiry {
		settings[flagNoExpiry] = "true"
	}
	if key.Generate != nil && *key.Generate {
		settings[flagGenerate] = "true"
	}
	if f.DualControl.WrapWithTrusted != nil && *f.DualControl.WrapWithTrusted {
		settings[flagWrapWithTrusted] = "true"
	}
	defined := map[string]bool{}
	for _, fl := range c.Command.Flags {
		for _, n := range fl.Names() {
			defined[n] = true
		}
	}
	for name, value := range settings {
		if value == "" || !defined[name] || c.IsSet(name) {
			continue
		}
		if err := c.Set(name, value); err != nil {
			return fmt.Errorf("%w: %s: %s: %v", kmsimport.ErrInvalidInput, path, name, err)
		}
	}
	if defined[flagTag] && !c.IsSet(flagTag) {
		for _, k := range slices.Sorted(maps.Keys(key.Tags)) {
			if err := c.Set(flagTag, k+"="+key.Tags[k]); err != nil {
				return err
			}
		}
	}
	// The file's pin-source is authoritative for the user PIN: an
	// ambient $KMSBRIDGE_PIN does not override it (an explicit --pin-file
	// on the command line does).
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[mdCeremony] = f
	return nil
}
