package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
	"github.com/kmsbridge/kmsbridge/record"
)

// status finds the Cloud KMS and Key Vault targets of the token's HSM
// keys without a ceremony file: every import --cloud gcp|azure (and every
// ceremony target) journals its changes in that cloud's journal for this
// token on this host (<serial>@gcp-PROJECT-LOCATION[@host].journal,
// <serial>@azure@host.journal, and their .archive), naming the crypto key
// or vault key and the HSM key's CKA_ID. status reads those journals
// read-only (journal.ReadToken), then each target from its cloud, under
// the endpoint policy: Google's and Azure's own endpoints as they are;
// any other (an emulator, a vault of your own) only when
// --allow-target-endpoint names it.

const (
	flagAllowTargetEndpoint = "allow-target-endpoint"
	flagFromRecord          = "from-record"
	flagFromRecordChainOnly = "from-record-chain-only"
	// problemTargetUnread: a target the journals name that status could
	// not read from its cloud; the inventory is incomplete.
	problemTargetUnread = "target-unread"
)

func fromRecordFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagFromRecord, Category: catKMS, Usage: "also list the Cloud KMS and Key Vault targets this token's HSM keys were imported into according to ceremony record `FILE`, which must verify against its own audit key as record verify checks it (repeatable), such as one copied from the host that imported them"}
}

func fromRecordChainOnlyFlag() cli.Flag {
	return &cli.BoolFlag{Name: flagFromRecordChainOnly, Category: catKMS, Usage: "take --from-record files written without an audit key, checking only their hash chain: that shows a file is self-consistent, not who wrote it (as record verify --chain-only)"}
}

func allowTargetEndpointFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagAllowTargetEndpoint, Category: catKMS, Usage: "read the Cloud KMS or Key Vault targets this host's journals show imported through `URL` (an emulator, your own vault), which is not Google's or Azure's: named on purpose, as the endpoint policy asks (repeatable)"}
}

// discovered is one target the journals name.
type discovered struct {
	cloud string
	// name is the crypto key's resource name or the vault key's URL.
	name     string
	hsmKeyID string
	label    string
	// journal is the file that names it, for its endpoint (Cloud KMS);
	// "" for a target found in a record.
	journal string
	// recordEndpoint is the Cloud KMS endpoint a record names for it
	// ("" when the record names none), and fromRecord the record.
	recordEndpoint, fromRecord string
	recordGoogle               bool
	// vault, keyName and kek: a Key Vault key.
	vault, keyName, kek string
}

// discoverTargets lists the targets the token's journals on this host
// name, in a stable order.
func discoverTargets(ctx context.Context, dir, serial string, log *slog.Logger) []discovered {
	keep := func(e journal.Entry) bool {
		return (e.Kind == journal.KindIntent || e.Kind == journal.KindOutcome) &&
			(e.Op == "ImportCryptoKeyVersion" || e.Op == "CreateCryptoKey" || e.Op == "azure:ImportKey" || e.Op == "azure:CreateKey")
	}
	reads, errs := journal.ReadToken(ctx, dir, serial, keep)
	for _, err := range errs {
		if log != nil {
			log.Warn("a journal could not be read for its targets", "error", err)
		}
	}
	seen := map[string]int{}
	var out []discovered
	add := func(d discovered) {
		k := d.cloud + " " + d.name
		if i, ok := seen[k]; ok {
			if out[i].hsmKeyID == "" {
				out[i].hsmKeyID = d.hsmKeyID
			}
			return
		}
		seen[k] = len(out)
		out = append(out, d)
	}
	for _, r := range reads {
		// A call the cloud refused made nothing: its target is not one.
		failed := map[string]bool{}
		for _, e := range r.Entries {
			if e.Kind == journal.KindOutcome && e.Result == journal.ResultFailed {
				failed[e.Attempt] = true
			}
		}
		// A Key Vault line names a vault of its own journal's scope, as a
		// Cloud KMS line is held to its (gcpEndpointOf): another is an
		// edit or a copy, never a target of this journal.
		ownVault := func(e journal.Entry) bool {
			v := e.Target["Vault"]
			if v != "" && (journal.Scope{TokenSerial: serial, Target: azure.JournalTarget(v)}).FileName() == r.FileName {
				return true
			}
			if log != nil {
				log.Warn("a journal line names a vault that is not its journal's; it is not taken as a target", "journal", r.FileName, "vault", kmsimport.Excerpt(v))
			}
			return false
		}
		keks := map[string]string{} // vault -> the KEK this host made there
		for _, e := range r.Entries {
			if e.Kind == journal.KindIntent && !failed[e.Attempt] && e.Op == "azure:CreateKey" && ownVault(e) {
				keks[e.Target["Vault"]] = e.Target["KeyName"]
			}
		}
		for _, e := range r.Entries {
			if e.Kind != journal.KindIntent || failed[e.Attempt] {
				continue
			}
			switch e.Op {
			case "ImportCryptoKeyVersion", "CreateCryptoKey":
				if ck := e.Target["CryptoKey"]; ck != "" {
					add(discovered{cloud: "gcp", name: ck, hsmKeyID: strings.ToLower(e.Target["HsmKeyId"]), journal: r.FileName})
				}
			case "azure:ImportKey":
				v, name := e.Target["Vault"], e.Target["KeyName"]
				if v == "" || name == "" || !ownVault(e) {
					continue
				}
				add(discovered{cloud: "azure", name: strings.TrimSuffix(v, "/") + "/keys/" + name, vault: v, keyName: name, kek: keks[v],
					hsmKeyID: strings.ToLower(e.Find["tag:"+azure.TagHSMKeyID]), label: e.Target["KeyLabel"], journal: r.FileName})
			}
		}
	}
	return out
}

// readDiscovered reads each discovered target from its cloud, changing
// nothing. A target status may not or cannot read is a row saying so
// (problemTargetUnread), never a failure of the whole status: the rest
// of the inventory still shows. known are targets already read (from
// --targets), skipped here.
func readDiscovered(ctx context.Context, ds []discovered, serial string, allowed []string, known map[string]bool) []kmsimport.StatusTarget {
	gcpClients := map[string]gcp.API{}
	defer func() {
		for _, c := range gcpClients {
			if cl, ok := c.(interface{ Close() error }); ok {
				_ = cl.Close()
			}
		}
	}()
	var out []kmsimport.StatusTarget
	for _, d := range ds {
		if known[d.cloud+" "+d.name] {
			continue
		}
		unread := func(note, fix string) {
			loc := d.vault
			if d.cloud == "gcp" {
				loc = d.name[:max(0, strings.Index(d.name, "/cryptoKeys/"))]
			}
			out = append(out, kmsimport.StatusTarget{Cloud: d.cloud, Target: d.name, Location: loc, HSMKeyID: d.hsmKeyID, HSMKeyLabel: d.label,
				State: "unread", Problem: problemTargetUnread, Note: note, Fix: fix})
		}
		switch d.cloud {
		case "gcp":
			var req gcp.Request
			if !req.ParseKeyName(d.name) {
				unread("the journal names no crypto key status can read", "")
				continue
			}
			ep, ok := gcpEndpointOf(req, serial, d.journal, allowed)
			if d.fromRecord != "" {
				ep, ok = recordEndpointOf(d, allowed)
				if !ok && d.recordEndpoint == "" {
					unread(fmt.Sprintf("record %s names it but not the endpoint it was imported through, and no journal on this host does", d.fromRecord),
						"give --targets CEREMONY.yaml (the ceremony file that sent it), or run status on the host that imported it")
					continue
				}
			}
			if !ok {
				unread(fmt.Sprintf("imported through an endpoint that is not Google's (journal %s), which status reads only when named", d.journal),
					"give --allow-target-endpoint URL, the endpoint it was imported through")
				continue
			}
			api, ok := gcpClients[ep]
			if !ok {
				var allow []string
				if ep != "" {
					allow = []string{ep}
				}
				c, err := gcp.NewClient(ctx, gcp.ClientOptions{EndpointURL: ep, Allowed: allow})
				if err != nil {
					unread("Cloud KMS could not be reached: "+firstLine(err.Error()), "check the credentials (Application Default Credentials) and the endpoint")
					continue
				}
				api, gcpClients[ep] = c, c
			}
			rows, err := gcp.ReadTarget(ctx, api, req, d.hsmKeyID, d.label, serial)
			if err != nil {
				unread("Cloud KMS could not be read: "+firstLine(err.Error()), "check the credentials (Application Default Credentials) and the endpoint")
				continue
			}
			out = append(out, rows...)
		case "azure":
			api, _, err := azure.NewClientAt(d.vault, allowed)
			if err != nil {
				unread("the vault is not Azure's, and status reads it only when named: "+firstLine(err.Error()), "give --allow-target-endpoint "+d.vault)
				continue
			}
			kek := d.kek
			if kek == "" {
				kek = azure.DefaultKEKName
			}
			row, err := azure.ReadTarget(ctx, api, azure.Request{Vault: d.vault, KeyName: d.keyName, KEKName: kek}, d.hsmKeyID, d.label, serial)
			if err != nil {
				unread("Key Vault could not be read: "+firstLine(err.Error()), "check the credentials (azidentity: environment, managed identity or az login) and the vault")
				continue
			}
			out = append(out, row)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].HSMKeyID != out[j].HSMKeyID {
			return out[i].HSMKeyID < out[j].HSMKeyID
		}
		return out[i].Cloud < out[j].Cloud
	})
	return out
}

// gcpEndpointOf is the endpoint a Cloud KMS target was imported through,
// told by the journal's file name: Google's ("") when the scope names no
// host, else the one --allow-target-endpoint URL whose journal scope is
// that file. ok is false when the operator named none.
func gcpEndpointOf(req gcp.Request, serial, journalFile string, allowed []string) (string, bool) {
	if (journal.Scope{TokenSerial: serial, Target: gcp.JournalTarget(req, "")}).FileName() == journalFile {
		return "", true
	}
	for _, a := range allowed {
		if u, err := url.Parse(a); err != nil || u.Host == "" {
			continue
		}
		if (journal.Scope{TokenSerial: serial, Target: gcp.JournalTarget(req, a)}).FileName() == journalFile {
			return a, true
		}
	}
	return "", false
}

// targetKeyName is the crypto key or vault key a status row is about: its
// Target without the version.
func targetKeyName(t kmsimport.StatusTarget) string {
	switch t.Cloud {
	case "gcp":
		if i := strings.Index(t.Target, "/cryptoKeyVersions/"); i >= 0 {
			return t.Target[:i]
		}
	case "azure":
		if i := strings.Index(t.Target, "/keys/"); i >= 0 {
			rest := t.Target[i+len("/keys/"):]
			if name, _, ok := strings.Cut(rest, "/"); ok {
				return t.Target[:i] + "/keys/" + name
			}
		}
	}
	return t.Target
}

// checkTargetEndpoints refuses, before status reads anything, an
// --allow-target-endpoint that is not an endpoint URL (scheme, host, no
// credentials), or plain http anywhere but on loopback.
func checkTargetEndpoints(urls []string) error {
	for _, a := range urls {
		u, err := kmsimport.ParseEndpointURL("--"+flagAllowTargetEndpoint, a)
		if err != nil {
			return err
		}
		if h := u.Hostname(); u.Scheme == "http" && h != "localhost" && !strings.HasPrefix(h, "127.") && h != "::1" {
			return fmt.Errorf("%w: --%s %s: plain http only on loopback (127.0.0.1, ::1, localhost); use https", kmsimport.ErrInvalidInput, flagAllowTargetEndpoint, kmsimport.Excerpt(a))
		}
	}
	return nil
}

// recordEndpointOf is the endpoint a record-found Cloud KMS target is
// read through: Google's, when the record says the import went there;
// else the one the record names, if --allow-target-endpoint names it too.
func recordEndpointOf(d discovered, allowed []string) (string, bool) {
	if d.recordEndpoint == "" {
		return "", false
	}
	if d.recordGoogle {
		return "", true
	}
	ru, err := url.Parse(d.recordEndpoint)
	if err != nil {
		return "", false
	}
	for _, a := range allowed {
		if au, err := url.Parse(a); err == nil && kmsimport.SameEndpoint(au, ru) {
			return a, true
		}
	}
	return "", false
}

// discoverFromRecords lists the Cloud KMS and Key Vault targets that the
// ceremony records at paths (--from-record) show this token's HSM keys
// imported into: each record is read bounded and must verify (its hash
// chain, as a ceremony's re-run checks it); its steps of import --cloud
// gcp|azure and of ceremony targets name the crypto key or vault key and
// the HSM key. A record that does not verify is refused. Like record
// verify, the signatures are checked against the record's own audit key;
// chainOnly (--from-record-chain-only, named on purpose) takes a record
// written without one on its hash chain alone, since anyone can write a
// self-consistent file.
func discoverFromRecords(paths []string, serial string, chainOnly bool) ([]discovered, error) {
	var out []discovered
	for _, path := range paths {
		fh, err := safefile.Open("--"+flagFromRecord, path)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", kmsimport.ErrInvalidInput, err)
		}
		rep, err := record.VerifyWith(safefile.Limit(fh, "--"+flagFromRecord, path, safefile.MaxRecord), record.VerifyOptions{OwnAuditKey: !chainOnly})
		fh.Close()
		if err != nil {
			how := "check it with kmsbridge record verify"
			if !chainOnly {
				how += "; a record written without an audit key is taken only with --" + flagFromRecordChainOnly
			}
			return nil, fmt.Errorf("%w: --%s %s does not verify (%s), so status does not take targets from it: %v", kmsimport.ErrInvalidInput, flagFromRecord, path, how, err)
		}
		for _, e := range rep.Entries {
			p := e.Parsed
			if p == nil || p.Outcome != record.OutcomeOK || (p.Token != nil && p.Token.Serial != serial) {
				continue
			}
			o := p.Outputs
			switch o["Cloud"] {
			case "gcp":
				if o["CryptoKey"] == "" {
					continue
				}
				d := discovered{cloud: "gcp", name: o["CryptoKey"], hsmKeyID: strings.ToLower(o["HsmKeyId"]), label: o["HsmKeyLabel"], fromRecord: path}
				if p.Inputs["KmsCloud"] == "google" {
					d.recordEndpoint = p.Inputs["KmsEndpoint"]
					d.recordGoogle = p.Inputs["KmsEndpointAllowedAs"] != kmsimport.AllowedOptIn
				}
				out = append(out, d)
			case "azure":
				v, name := o["Vault"], o["KeyName"]
				if v == "" || name == "" {
					continue
				}
				out = append(out, discovered{cloud: "azure", name: strings.TrimSuffix(v, "/") + "/keys/" + name, vault: v, keyName: name,
					hsmKeyID: strings.ToLower(o["HsmKeyId"]), label: o["HsmKeyLabel"], fromRecord: path})
			}
		}
	}
	return out, nil
}

// mergeDiscovered is a followed by each of b not already in a (by cloud
// and target), keeping a's HSM key when b knows one.
func mergeDiscovered(a, b []discovered) []discovered {
	seen := map[string]int{}
	for i, d := range a {
		seen[d.cloud+" "+d.name] = i
	}
	for _, d := range b {
		k := d.cloud + " " + d.name
		if i, ok := seen[k]; ok {
			if a[i].hsmKeyID == "" {
				a[i].hsmKeyID = d.hsmKeyID
			}
			continue
		}
		seen[k] = len(a)
		a = append(a, d)
	}
	return a
}
