package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure"
	"github.com/kmsbridge/kmsbridge/kmsimport/azure/byok"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
)

// The air-gapped split for Google Cloud KMS and Azure Key Vault: the same
// prepare, wrap and upload as AWS's, one bundle format with a Cloud field
// (kmsimport/splitcloud.go), the cloud's own steps in its package.

const (
	flagImportMethod = "import-method"
	flagByokOut      = "byok-out"
	flagByokFile     = "byok-file"
)

const splitCloudsHelp = `

Google Cloud KMS (prepare --cloud gcp): creates the key ring and an import job
(or reuses --import-job, or a job an earlier prepare made), waits until it is
ACTIVE, and writes its wrapping public key, import method and HSM attestation
into the bundle. The crypto key is created by upload, labelled with the HSM
key. wrap verifies the attestation offline against the roots the officers bring
(--gcp-manufacturer-root, --gcp-owner-root) before the token is touched.

  kmsbridge prepare --cloud gcp --gcp-project my-project --gcp-location europe-west1 \
      --key-ring payments --crypto-key payments-2026 \
      --import-method RSA_OAEP_3072_SHA1_AES_256 --out payments.bundle.json

Azure Key Vault (prepare --cloud azure): creates the Key Exchange Key when
absent (RSA-HSM, key_ops import only) or checks it is exactly that, and writes
its public key and versioned kid into the bundle. wrap writes the standard
.byok transfer blob too (--byok-out), which az keyvault key import --byok-file
takes as well as kmsbridge upload.

  kmsbridge prepare --cloud azure --vault-url https://contoso.vault.azure.net \
      --key-name signer --azure-key-type EC-P256 --out signer.bundle.json`

// splitPrepareFlags are prepare's flags for the other clouds.
func splitPrepareFlags() []cli.Flag {
	f := append(append([]cli.Flag{cloudFlag()}, gcpFlags()...), azureFlags()...)
	return append(f,
		&cli.StringFlag{Name: flagImportMethod, Category: catGCP, Usage: "the import `METHOD` of a new import job, one the offline token performs (default: the strongest Cloud KMS offers, RSA_OAEP_4096_SHA256_AES_256; SoftHSM2 needs a SHA1 one)"},
		&cli.StringFlag{Name: flagValidTo, Category: catAzure, Usage: "Azure: the imported key expires at `TIME` (RFC 3339 or a date)"},
	)
}

// splitWrapFlags are wrap's flags for the other clouds.
func splitWrapFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagGCPMfrRoot, Category: catGCP, Usage: "Google bundle: the HSM manufacturer's attestation root, PEM `FILE` on this host"},
		&cli.StringFlag{Name: flagGCPOwnerRoot, Category: catGCP, Usage: "Google bundle: Google's Cloud HSM attestation root, PEM `FILE` on this host"},
		&cli.BoolFlag{Name: flagGCPSkipAttest, Category: catGCP, Usage: "Google bundle: wrap under an HSM import job without verifying its attestation (recorded; not advised)"},
		&cli.StringFlag{Name: flagAzureAttRoot, Category: catAzure, Usage: "Azure Managed HSM bundle: verify the attestation of the Key Exchange Key prepare carried against this manufacturer root, PEM `FILE` on this host, before the token is touched"},
		azurePartitionFlag(),
		&cli.StringFlag{Name: flagByokOut, Category: catAzure, Usage: "Azure bundle: write the standard .byok transfer blob to new `FILE` (default: --out with .byok for .json)"},
	}
}

// splitUploadFlags are upload's flags for the other clouds: the online
// host verifies the vault's attestation of the KEK again, pinned.
func splitUploadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagAzureAttRoot, Category: catAzure, Usage: "Azure Managed HSM: verify the vault's attestation of the Key Exchange Key the .byok is wrapped under against this manufacturer root, PEM `FILE`, before the import"},
		azurePartitionFlag(),
	}
}

// prepareOtherCloud runs prepare --cloud gcp|azure. It reports false for
// AWS, which prepare's own action runs.
func prepareOtherCloud(c *cliContext, format string, log *slog.Logger) (bool, error) {
	cloud, err := importCloud(c)
	if err != nil {
		return true, err
	}
	if cloud == "aws" {
		for _, f := range []string{flagImportMethod, flagValidTo} {
			if c.IsSet(f) {
				return true, usageError{fmt.Sprintf("--%s is a flag of prepare --cloud gcp or azure (AWS material's expiry is given to upload)", f)}
			}
		}
		return false, nil
	}
	if c.IsSet(flagGCPSkipAttest) {
		return true, usageError{"--gcp-skip-attestation is wrap's to give: prepare only carries the attestation (and verifies it when given the roots)"}
	}
	if cloud == "azure" && c.IsSet(flagImportMethod) {
		return true, usageError{"--import-method is a flag of --cloud gcp: Azure BYOK takes CKM_RSA_AES_KEY_WRAP only"}
	}
	if cloud == "gcp" && c.IsSet(flagValidTo) {
		return true, usageError{"--valid-to means nothing to Cloud KMS imports: drop it"}
	}
	var auditFP string
	if p := c.String(flagAuditPublicKey); p != "" {
		pub, err := readAuditPublicKey(p)
		if err != nil {
			return true, err
		}
		if auditFP, err = awskms.AuditKeyFingerprint(pub); err != nil {
			return true, err
		}
	}
	out := c.String(flagOut)
	if err := kmsimport.CheckNewFile("--out", out); err != nil {
		return true, err
	}
	var (
		b      *kmsimport.Bundle
		res    any
		rec    *recorder
		target string
	)
	switch cloud {
	case "gcp":
		req, err := gcpTargetRequest(c)
		if err != nil {
			return true, err
		}
		endpoint := c.String(flagEndpointURL)
		api, ep, err := gcp.NewClientAt(c.Context, gcp.ClientOptions{EndpointURL: endpoint, Allowed: gcpAllowedEndpoints(c)})
		if err != nil {
			return true, err
		}
		defer api.Close()
		if rec, err = openRecorder(c, "prepare", map[string]string{"Cloud": "gcp", "CryptoKey": "projects/" + req.Project + "/locations/" + req.Location + "/keyRings/" + req.KeyRing + "/cryptoKeys/" + req.CryptoKey,
			"Algorithm": req.Algorithm, "ProtectionLevel": req.ProtectionLevel, "ImportMethod": c.String(flagImportMethod), "ImportJob": req.ImportJob}, log, nil, nil); err != nil {
			return true, err
		}
		target = gcpJournalTarget(req, endpoint)
		j, err := openJournalFor(c, "", target, rec)
		if err != nil {
			return true, rec.close(err)
		}
		defer j.Close()
		im := &gcp.Importer{KMS: api, Journal: j, Log: log, Observe: rec.observer(), Command: "prepare"}
		var r *gcp.Result
		b, r, err = im.Prepare(c.Context, req, c.String(flagImportMethod))
		res = r
		if err != nil {
			return true, rec.close(err)
		}
		// Where the calls went as the endpoint policy resolved and allowed
		// it, with the TLS peer that answered: what wrap shows the officers.
		e := ep.Endpoint()
		b.KmsEndpoint = &e
	case "azure":
		req, err := azurePrepareRequest(c)
		if err != nil {
			return true, err
		}
		api, ep, challenge, err := azure.NewObservedClientAt(req.Vault, azureAllowedEndpoints(c))
		if err != nil {
			return true, err
		}
		if rec, err = openRecorder(c, "prepare", map[string]string{"Cloud": "azure", "Vault": req.Vault, "KeyName": req.KeyName, "KekName": req.KEKName, "KeyType": req.KeyType}, log, nil, nil); err != nil {
			return true, err
		}
		u, _ := url.Parse(req.Vault)
		target = "azure@" + u.Host
		j, err := openJournalFor(c, "", target, rec)
		if err != nil {
			return true, rec.close(err)
		}
		defer j.Close()
		im := &azure.Importer{KV: api, Journal: j, Log: log, Observe: rec.observer(), Command: "prepare", Challenge: challenge}
		var r *azure.Result
		b, r, err = im.Prepare(c.Context, req)
		res = r
		if err != nil {
			return true, rec.close(err)
		}
		e := ep.Endpoint()
		b.KmsEndpoint = &e
	}
	b.AuditPublicKeySha256 = auditFP
	err = awskms.WriteBundle(out, b)
	rec.add("write-bundle", map[string]string{"BundleFile": out, "Cloud": cloud, "Target": b.KeyId, "WrappingPublicKeySha256": b.PublicKeySha256,
		"ImportTokenSha256": b.ImportTokenSha256, "ParametersValidTo": b.ParametersValidTo.Format(time.RFC3339), "AuditPublicKeySha256": auditFP}, err, nil)
	if err != nil {
		err = fmt.Errorf("%w\nNo bundle was written; what prepare made (a key ring, an import job, a Key Exchange Key) is reused by the same kmsbridge prepare run again on this host", err)
	}
	if err = rec.close(err); err != nil {
		return true, err
	}
	log.Info("wrote import bundle", "file", out, "cloud", cloud, "target", b.KeyId, "public_key_sha256", b.PublicKeySha256)
	if format == "json" {
		return true, writeJSON(c.App.Writer, map[string]any{"Bundle": out, "Cloud": cloud, "KeyId": b.KeyId, "KeySpec": b.KeySpec,
			"WrappingAlgorithm": b.WrappingAlgorithm, "WrappingKeySpec": b.WrappingKeySpec, "PublicKeySha256": b.PublicKeySha256,
			"ImportToken": string(b.ImportToken), "ParametersValidTo": b.ParametersValidTo, "KmsEndpoint": b.KmsEndpoint, "Result": res})
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Import bundle written to %s (valid until %s).\n", out, b.ParametersValidTo.Format(time.RFC3339))
	switch cloud {
	case "gcp":
		fmt.Fprintf(w, "  crypto key         %s (%s, %s)\n  import job         %s\n  wrapping           %s\n  attestation        %s\n",
			b.KeyId, b.KeySpec, b.Gcp.ProtectionLevel, b.ImportToken, b.WrappingAlgorithm, b.Gcp.OnlineAttestation)
	case "azure":
		fmt.Fprintf(w, "  key                %s (%s)\n  key exchange key   %s\n  wrapping           %s under %s\n", b.KeyId, b.KeySpec, b.ImportToken, b.WrappingAlgorithm, b.WrappingKeySpec)
	}
	fmt.Fprintf(w, "  from endpoint      %s\n\n", bundleOrigin(b))
	fmt.Fprintf(w, "Wrapping public key SHA-256 (read it aloud; the HSM host must show the same):\n\n%s\n\n", indent(awskms.FormatFingerprint(b.PublicKeySha256), "    "))
	next := fmt.Sprintf("kmsbridge wrap --bundle %s --expect-fingerprint %s", out, b.PublicKeySha256)
	if cloud == "gcp" && b.Gcp.Attestation != nil {
		next += " --gcp-manufacturer-root ROOT.pem --gcp-owner-root ROOT.pem"
	}
	fmt.Fprintf(w, "Next, on the HSM host: %s ...\n", next)
	return true, nil
}

// gcpTargetRequest is the Cloud KMS target of prepare, from flags alone.
func gcpTargetRequest(c *cliContext) (gcp.Request, error) {
	req := gcp.Request{Project: c.String(flagGCPProject), Location: c.String(flagGCPLocation), KeyRing: c.String(flagKeyRing),
		CryptoKey: c.String(flagCryptoKey), Algorithm: c.String(flagGCPAlgorithm), ProtectionLevel: c.String(flagGCPProtection),
		ImportJob: c.String(flagImportJob), ReimportVersion: c.String(flagCryptoKeyVersion),
		ManufacturerRoot: c.String(flagGCPMfrRoot), OwnerRoot: c.String(flagGCPOwnerRoot)}
	if full := c.String(flagCryptoKey); strings.HasPrefix(full, "projects/") || strings.HasPrefix(full, "gcp://") {
		if c.IsSet(flagGCPProject) || c.IsSet(flagGCPLocation) || c.IsSet(flagKeyRing) {
			return req, usageError{"--crypto-key is a full resource name: drop --gcp-project, --gcp-location and --key-ring, which it already gives"}
		}
		if !req.ParseKeyName(full) {
			return req, usageError{fmt.Sprintf("--crypto-key %q is not projects/P/locations/L/keyRings/R/cryptoKeys/K", full)}
		}
	}
	if err := gcp.CheckEndpoint(c.String(flagEndpointURL), gcpAllowedEndpoints(c)); err != nil {
		return req, err
	}
	return req, req.ValidateTarget()
}

// gcpJournalTarget is the journal scope of Cloud KMS calls, as the
// one-pass import names it.
func gcpJournalTarget(req gcp.Request, endpoint string) string {
	target := "gcp-" + req.Project + "-" + req.Location
	if endpoint != "" {
		if u, err := url.Parse(endpoint); err == nil {
			target += "@" + u.Host
		}
	}
	return target
}

// azurePrepareRequest is the Azure request of prepare (no HSM key) from flags.
func azurePrepareRequest(c *cliContext) (azure.Request, error) {
	req := azure.Request{KeyName: c.String(flagKeyName), KEKName: c.String(flagKEKName), KEKBits: c.Int(flagKEKSize),
		KeyType: c.String(flagAzureKeyType), Disabled: c.Bool(flagDisabled), Tags: map[string]string{}, AttestationRoot: c.String(flagAzureAttRoot),
		HSMPartitions: c.StringSlice(flagAzurePartition)}
	if req.KeyName == "" {
		return req, usageError{"--cloud azure needs --key-name NAME, the Key Vault key to import into"}
	}
	vault, err := azure.VaultURL(c.String(flagVaultURL), c.String(flagEndpointURL), azureAllowedEndpoints(c))
	if err != nil {
		return req, err
	}
	req.Vault = vault
	if req.ManagedHSM, err = azureManagedHSM(c, vault); err != nil {
		return req, err
	}
	for flag, dst := range map[string]**time.Time{flagValidTo: &req.Expires, flagNotBefore: &req.NotBefore} {
		if s := c.String(flag); s != "" {
			t, err := parseTime(flag, s)
			if err != nil {
				return req, err
			}
			*dst = &t
		}
	}
	for _, kv := range c.StringSlice(flagTag) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return req, usageError{fmt.Sprintf("--tag %q: write tags as KEY=VALUE", kv)}
		}
		req.Tags[k] = v
	}
	return req, nil
}

// checkWrapFlags refuses, before anything is read from the token, the
// wrap flags that do not apply to the bundle's cloud.
func checkWrapFlags(c *cliContext, b *kmsimport.Bundle) error {
	cloud := kmsimport.CloudOf(b.Cloud)
	for _, f := range []struct {
		name  string
		cloud string
	}{{flagGCPMfrRoot, "gcp"}, {flagGCPOwnerRoot, "gcp"}, {flagGCPSkipAttest, "gcp"}, {flagByokOut, "azure"}, {flagAzureAttRoot, "azure"}, {flagAzurePartition, "azure"}} {
		if c.IsSet(f.name) && cloud != f.cloud {
			return usageError{fmt.Sprintf("--%s is for a bundle of cloud %s, and this bundle is for %s: drop it", f.name, f.cloud, cloud)}
		}
	}
	if cloud != "aws" {
		for _, f := range []string{flagWrapWithTrusted, flagAllowNonSensitive} {
			if c.IsSet(f) {
				return usageError{fmt.Sprintf("--%s is not supported for a %s bundle yet: drop it", f, cloud)}
			}
		}
	}
	return nil
}

// exists reports whether anything is at path.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// byokOut is where wrap writes an Azure bundle's .byok.
func byokOut(c *cliContext) string {
	if p := c.String(flagByokOut); p != "" {
		return p
	}
	return strings.TrimSuffix(c.String(flagOut), ".json") + ".byok"
}

// wrapForCloud runs the wrap of the bundle's cloud.
func wrapForCloud(c *cliContext, im *awskms.Importer, b *kmsimport.Bundle, bundleSum string, req awskms.WrapRequest, now time.Time) (*kmsimport.Wrapped, error) {
	switch kmsimport.CloudOf(b.Cloud) {
	case "gcp":
		g := &gcp.Importer{Token: im.Token, Journal: im.Journal, Log: im.Log, Observe: im.Observe, Command: "wrap", Now: func() time.Time { return now }}
		w, _, err := g.WrapBundle(b, bundleSum, gcp.WrapRequest{KeyLabel: req.KeyLabel, KeyID: req.KeyID, Generate: req.Generate,
			ManufacturerRoot: c.String(flagGCPMfrRoot), OwnerRoot: c.String(flagGCPOwnerRoot), SkipAttestation: c.Bool(flagGCPSkipAttest)})
		return w, err
	case "azure":
		a := &azure.Importer{Token: im.Token, Journal: im.Journal, Log: im.Log, Observe: im.Observe, Command: "wrap", Now: func() time.Time { return now }}
		w, _, err := a.WrapBundle(b, bundleSum, azure.WrapRequest{KeyLabel: req.KeyLabel, KeyID: req.KeyID, Generate: req.Generate,
			AttestationRoot: c.String(flagAzureAttRoot), HSMPartitions: c.StringSlice(flagAzurePartition)})
		return w, err
	}
	return awskms.WrapBundle(im, b, bundleSum, req, now)
}

// writeByok writes the .byok beside an Azure wrapped file: the bytes the
// wrapped file carries (and its signature covers), as Azure's tools take
// them.
func writeByok(c *cliContext, w *kmsimport.Wrapped) (string, error) {
	if kmsimport.CloudOf(w.Cloud) != "azure" {
		return "", nil
	}
	path := byokOut(c)
	return path, kmsimport.WriteByok(path, w)
}

// uploadOtherCloud runs upload for a Google or Azure wrapped file, already
// read and its integrity checked.
func uploadOtherCloud(c *cliContext, format string, log *slog.Logger, w *kmsimport.Wrapped, evidence string) error {
	cloud := kmsimport.CloudOf(w.Cloud)
	for _, f := range []string{flagValidTo, flagNoExpiry} {
		if c.IsSet(f) {
			return usageError{fmt.Sprintf("--%s is for AWS material: a %s import takes its attributes from prepare", f, cloud)}
		}
	}
	if p := c.String(flagByokFile); p != "" {
		if cloud != "azure" {
			return usageError{"--byok-file is for an Azure wrapped file"}
		}
		raw, err := safefile.Read("--byok-file", p, byok.MaxSize)
		if err != nil {
			return fmt.Errorf("%w: %w", kmsimport.ErrInvalidInput, err)
		}
		if !bytes.Equal(raw, w.EncryptedKeyMaterial) {
			return fmt.Errorf("%w: --byok-file %s (SHA-256 %s) is not the .byok the wrapped file carries (SHA-256 %s, %s): it was swapped or altered; do not upload it, use the .byok wrap wrote beside %s",
				kmsimport.ErrVerification, p, kmsimport.Fingerprint(raw), w.EncryptedKeyMaterialSha256, evidence, c.String(flagWrapped))
		}
	}
	var (
		u   cloudUploader
		err error
	)
	switch cloud {
	case "gcp":
		u, err = gcpUploader(c, w, evidence)
	case "azure":
		u, err = azureUploader(c, w, evidence)
	default:
		return usageError{fmt.Sprintf("the wrapped file is for cloud %q, which upload does not know", cloud)}
	}
	if err != nil {
		return err
	}
	defer u.close()
	rec, err := openRecorder(c, "upload", map[string]string{"Cloud": cloud, "Target": w.KeyId, "EncryptedKeyMaterialSha256": w.EncryptedKeyMaterialSha256,
		"HsmKeyId": w.HSMKey.KeyID, "BundleSha256": w.BundleSha256, "HsmEvidence": evidence, "AllowUnsigned": fmt.Sprint(c.Bool(flagAllowUnsigned))}, log, nil, nil)
	if err != nil {
		return err
	}
	j, err := openJournalFor(c, w.Token.Serial, u.journalTarget, rec)
	if err != nil {
		return rec.close(err)
	}
	defer j.Close()
	res, summary, err := u.upload(j, log, rec.observer())
	err = rec.close(err)
	switch {
	case format == "json" && err != nil:
		_ = writeJSON(c.App.Writer, map[string]any{"Error": err.Error(), "ExitCode": exitCode(err), "Partial": res})
	case format == "json":
		return writeJSON(c.App.Writer, res)
	case err == nil:
		summary(c.App.Writer)
		fmt.Fprintf(c.App.Writer, "  integrity           %s\n", evidence)
	}
	return err
}

// cloudUploader is one cloud's part of upload, the rest being the same
// for every cloud (uploadOtherCloud): its client, opened (and its endpoint
// checked) before anything is recorded, the scope of its journal, and the
// upload itself, whose result carries how the wrapped file was checked.
type cloudUploader struct {
	journalTarget string
	upload        func(j *journal.Journal, log *slog.Logger, observe func(kmsimport.StepEvent)) (res any, summary func(io.Writer), err error)
	close         func()
}

func gcpUploader(c *cliContext, w *kmsimport.Wrapped, evidence string) (cloudUploader, error) {
	endpoint := c.String(flagEndpointURL)
	api, err := gcp.NewClient(c.Context, gcp.ClientOptions{EndpointURL: endpoint, Allowed: gcpAllowedEndpoints(c)})
	if err != nil {
		return cloudUploader{}, err
	}
	var req gcp.Request
	req.ParseKeyName(w.KeyId)
	return cloudUploader{journalTarget: gcpJournalTarget(req, endpoint), close: func() { api.Close() },
		upload: func(j *journal.Journal, log *slog.Logger, observe func(kmsimport.StepEvent)) (any, func(io.Writer), error) {
			im := &gcp.Importer{KMS: api, Journal: j, Log: log, Observe: observe, Command: "upload"}
			r, err := im.Upload(c.Context, w)
			return struct {
				*gcp.Result
				HsmEvidence string `json:"HsmEvidence"`
			}{r, evidence}, r.WriteSummary, err
		}}, nil
}

func azureUploader(c *cliContext, w *kmsimport.Wrapped, evidence string) (cloudUploader, error) {
	vault, err := azure.VaultURL(w.Azure.Vault, c.String(flagEndpointURL), azureAllowedEndpoints(c))
	if err != nil {
		return cloudUploader{}, err
	}
	if vault != w.Azure.Vault {
		return cloudUploader{}, usageError{fmt.Sprintf("--endpoint-url %s is not the vault %s the wrapped file is for", c.String(flagEndpointURL), w.Azure.Vault)}
	}
	api, _, challenge, err := azure.NewObservedClientAt(vault, azureAllowedEndpoints(c))
	if err != nil {
		return cloudUploader{}, err
	}
	u, _ := url.Parse(vault)
	return cloudUploader{journalTarget: "azure@" + u.Host, close: func() {},
		upload: func(j *journal.Journal, log *slog.Logger, observe func(kmsimport.StepEvent)) (any, func(io.Writer), error) {
			im := &azure.Importer{KV: api, Journal: j, Log: log, Observe: observe, Command: "upload", Challenge: challenge}
			r, err := im.Upload(c.Context, w, azure.UploadRequest{AttestationRoot: c.String(flagAzureAttRoot), HSMPartitions: c.StringSlice(flagAzurePartition)})
			return struct {
				*azure.Result
				HsmEvidence string `json:"HsmEvidence"`
			}{r, evidence}, r.WriteSummary, err
		}}, nil
}

// bundleOrigin is the endpoint a bundle's wrapping key came from, for
// people: AWS's endpoints say their partition and TLS peer; Google's and
// Azure's say whether they are the cloud's own or confirmed on purpose.
func bundleOrigin(b *kmsimport.Bundle) string {
	e := b.KmsEndpoint
	switch {
	case e == nil:
		return "(not named)"
	case kmsimport.CloudOf(b.Cloud) == kmsimport.CloudAWS:
		return e.String()
	case e.AllowedAs == "opt-in":
		s := e.URL + " (NOT " + map[string]string{"gcp": "Google's", "azure": "Azure's"}[b.Cloud] + ": confirmed with --allow-endpoint)"
		if strings.HasPrefix(e.URL, "http://") {
			s += "; plain http on loopback, no TLS"
		}
		return s
	}
	return e.URL + " (" + map[string]string{"gcp": "Google Cloud KMS", "azure": "Azure Key Vault"}[b.Cloud] + ")"
}
