package gcp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	locationpb "google.golang.org/genproto/googleapis/cloud/location"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest"
)

// The air-gapped split for Google Cloud KMS, with the same three commands
// and files as AWS's (kmsimport/aws/split.go):
//
//   - Prepare (online, no HSM): key ring and import job created or reused,
//     the job waited for until ACTIVE, and its wrapping public key, import
//     method and attestation written into the bundle.
//   - WrapBundle (offline, no network): the attestation verified against
//     the roots the officers bring BEFORE any HSM key is chosen, generated
//     or wrapped; then the wrap inside the token and the HSM's evidence.
//   - Upload (online, no HSM): the crypto key created (labelled with the
//     HSM key) or adopted by its labels, ImportCryptoKeyVersion, the wait
//     until ENABLED, and the proof against the HSM's evidence, each change
//     journaled so a re-run finishes the job and never imports twice.
//
// The crypto key is created by the upload, not by prepare: its labels
// name the HSM key, which only the wrap knows, and Cloud KMS never deletes
// a crypto key, so nothing is made before the material is ready.

// StepEvidence gathers the HSM's evidence for the upload's proof.
const StepEvidence = "gather-evidence"

func init() {
	kmsimport.RegisterSplitCloud(kmsimport.CloudGCP, kmsimport.SplitCloud{
		CheckBundle: checkBundle, CheckEndpoint: checkBundleEndpoint, CheckWrapped: checkWrapped,
	})
}

func (im *Importer) defaults() {
	if im.Poll == 0 {
		im.Poll = 500 * time.Millisecond
	}
	if im.Wait == 0 {
		im.Wait = 10 * time.Minute
	}
}

// Prepare is the online first step: everything of the import that needs
// Cloud KMS and not the HSM. method is the import method the offline
// token will perform ("" for the strongest Cloud KMS offers for the
// algorithm); the roots in req are optional here: given, the attestation
// is verified online too. The bundle's KmsEndpoint is the caller's to set.
func (im *Importer) Prepare(ctx context.Context, req Request, method string) (*kmsimport.Bundle, *Result, error) {
	im.defaults()
	r := &run{im: im, req: &req, res: &Result{Cloud: "gcp"}}
	err := r.engine().Run(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: r.validatePrepare(method)},
		{Name: StepCheck, Run: r.checkPrepare},
		{Name: StepCreateRing, Run: r.createRing},
		{Name: StepCreateJob, Run: r.createJob},
		{Name: StepWaitJob, Run: r.waitJob},
		{Name: StepAttest, Run: r.attestPrepare}})
	if err != nil {
		return nil, r.res, err
	}
	blk, _ := pem.Decode([]byte(r.job.GetPublicKey().GetPem()))
	gb := &kmsimport.GCPBundle{ProtectionLevel: r.req.ProtectionLevel, ReimportVersion: r.req.ReimportVersion,
		JobGenerateTime: r.job.GetGenerateTime().AsTime().UTC(), OnlineAttestation: r.res.Attestation.Status}
	if a := r.job.GetAttestation(); a != nil && r.job.ProtectionLevel == kmspb.ProtectionLevel_HSM {
		gb.Attestation = &kmsimport.GCPAttestation{Format: int32(a.Format), Content: a.Content, CaviumCerts: a.GetCertChains().GetCaviumCerts(),
			GoogleCardCerts: a.GetCertChains().GetGoogleCardCerts(), GooglePartitionCerts: a.GetCertChains().GetGooglePartitionCerts()}
	}
	name := []byte(r.job.Name)
	return &kmsimport.Bundle{
		Format: kmsimport.BundleFormat, Cloud: kmsimport.CloudGCP, KeyId: r.req.key(), Region: r.req.Location,
		KeySpec: r.alg.Name, KeyUsage: r.alg.Purpose.String(), WrappingAlgorithm: r.wrap.Name, WrappingKeySpec: fmt.Sprintf("RSA_%d", r.wrap.RSABits),
		PublicKey: blk.Bytes, PublicKeySha256: kmsimport.Fingerprint(blk.Bytes), ImportToken: name, ImportTokenSha256: kmsimport.Fingerprint(name),
		ParametersValidTo: r.job.GetExpireTime().AsTime().UTC(), PreparedAt: im.now().UTC(), Gcp: gb,
	}, r.res, nil
}

func (r *run) validatePrepare(method string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		if err := r.req.ValidateTarget(); err != nil {
			return "", err
		}
		if (r.req.ManufacturerRoot == "") != (r.req.OwnerRoot == "") {
			return "", invalid("give both --gcp-manufacturer-root and --gcp-owner-root to verify the attestation here too, or neither (wrap verifies it offline in any case)")
		}
		name := r.req.Algorithm
		if name == "" {
			name = "GOOGLE_SYMMETRIC_ENCRYPTION"
		}
		r.alg, _ = ParseAlgorithm(name)
		r.res.CryptoKey, r.res.ProtectionLevel, r.res.Algorithm, r.res.Purpose = r.req.key(), r.req.ProtectionLevel, r.alg.Name, r.alg.Purpose.String()
		offered := target{}.WrapMethods(r.alg.HSM)
		if method == "" {
			r.wrap = offered[0]
		} else {
			w, err := offeredMethod(method, r.alg)
			if err != nil {
				return "", err
			}
			r.wrap = w
		}
		r.res.ImportMethod = r.wrap.Name
		if r.req.ProtectionLevel == "HSM" && r.req.ManufacturerRoot != "" {
			roots, err := attest.LoadRoots(r.req.ManufacturerRoot, r.req.OwnerRoot)
			if err != nil {
				return "", fmt.Errorf("%w: %v", kmsimport.ErrInvalidInput, err)
			}
			r.roots = roots
		}
		return fmt.Sprintf("request is complete: %s material, import method %s", r.alg.Name, r.wrap.Name), nil
	}
}

// offeredMethod is the import method named, when Cloud KMS offers it for
// alg.
func offeredMethod(name string, alg Algorithm) (kmsimport.CloudWrap, error) {
	var names []string
	for _, w := range (target{}).WrapMethods(alg.HSM) {
		if w.Name == strings.ToUpper(strings.TrimSpace(name)) {
			return w, nil
		}
		names = append(names, w.Name)
	}
	return kmsimport.CloudWrap{}, invalid("--import-method %q is not one Cloud KMS offers for %s: choose one of %s, that the offline token can perform (SoftHSM2 cannot do the SHA256 ones)", kmsimport.Excerpt(name), alg.Name, strings.Join(names, ", "))
}

// checkPrepare reads Cloud KMS, changing nothing. An existing crypto key
// must have the purpose and protection level; its labels (whose HSM key
// it is) are checked by the upload, which knows the HSM key.
func (r *run) checkPrepare(ctx context.Context) (string, error) {
	api := r.im.KMS
	if _, err := api.GetLocation(ctx, &locationpb.GetLocationRequest{Name: r.req.location()}); err != nil {
		if isCode(err, codes.NotFound) {
			return "", invalid("Cloud KMS has no location %q in project %q: check --gcp-location (e.g. us-central1, europe-west1, global) and --gcp-project", r.req.Location, r.req.Project)
		}
		return "", explain("GetLocation", err)
	}
	var said []string
	_, err := api.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: r.req.ring()})
	switch {
	case err == nil:
		r.ringExists = true
	case isCode(err, codes.NotFound):
		if r.req.ImportJob != "" || r.req.ReimportVersion != "" {
			return "", invalid("key ring %s does not exist, so it holds no import job or version to use: check --key-ring, or drop --import-job/--crypto-key-version", r.req.ring())
		}
		said = append(said, "key ring "+r.req.KeyRing+" will be created")
	default:
		return "", explain("GetKeyRing", err)
	}
	if r.ringExists {
		ck, err := api.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: r.req.key()})
		switch {
		case err == nil:
			if ck.Purpose != r.alg.Purpose {
				return "", invalid("crypto key %s has purpose %s, but %s material needs %s: choose another --crypto-key", ck.Name, ck.Purpose, r.alg.Name, r.alg.Purpose)
			}
			if pl := ck.GetVersionTemplate().GetProtectionLevel(); pl != r.req.protection() {
				return "", invalid("crypto key %s has protection level %s, but the import job would be %s: give --gcp-protection-level %s, or another --crypto-key", ck.Name, pl, r.req.ProtectionLevel, pl)
			}
			r.keyExists = true
			said = append(said, "crypto key exists (upload checks its labels name the HSM key)")
		case isCode(err, codes.NotFound):
			if r.req.ReimportVersion != "" {
				return "", invalid("crypto key %s does not exist, so it has no version %s to re-import into", r.req.key(), r.req.ReimportVersion)
			}
			said = append(said, "crypto key "+r.req.CryptoKey+" will be created, import-only, by the upload")
		default:
			return "", explain("GetCryptoKey", err)
		}
	}
	if r.req.ReimportVersion != "" {
		v, err := api.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: r.req.key() + "/cryptoKeyVersions/" + r.req.ReimportVersion})
		if err != nil {
			if isCode(err, codes.NotFound) {
				return "", invalid("crypto key %s has no version %s: check --crypto-key-version", r.req.key(), r.req.ReimportVersion)
			}
			return "", explain("GetCryptoKeyVersion", err)
		}
		if err := reimportable(v, r.alg); err != nil {
			return "", err
		}
		said = append(said, "version "+r.req.ReimportVersion+" takes the material again")
	}
	if r.req.ImportJob != "" {
		j, err := api.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: r.req.ring() + "/importJobs/" + r.req.ImportJob})
		if err != nil {
			if isCode(err, codes.NotFound) {
				return "", invalid("import job %s does not exist in key ring %s: check --import-job, or drop it to have one created", r.req.ImportJob, r.req.ring())
			}
			return "", explain("GetImportJob", err)
		}
		// The job's method is the one the offline token must perform.
		w, ok := wrapOf(j.ImportMethod)
		if !ok {
			return "", invalid("import job %s uses %s, which kmsbridge does not wrap for: drop --import-job to have one created", j.Name, j.ImportMethod)
		}
		if _, err := offeredMethod(w.Name, r.alg); err != nil {
			return "", invalid("import job %s uses %s, which cannot carry %s material: drop --import-job", j.Name, w.Name, r.alg.Name)
		}
		r.wrap, r.res.ImportMethod = w, w.Name
		if err := r.useJob(j); err != nil {
			return "", err
		}
		said = append(said, "import job "+r.req.ImportJob+" is usable")
	} else if r.ringExists {
		if err := r.findEarlierJob(ctx); err != nil {
			return "", err
		}
		if r.job != nil {
			said = append(said, "reusing import job "+r.job.Name+" an earlier prepare created")
		}
	}
	if len(said) == 0 {
		said = append(said, "key ring exists")
	}
	return strings.Join(said, "; "), nil
}

// reimportable says whether version v can take alg's material again.
func reimportable(v *kmspb.CryptoKeyVersion, alg Algorithm) error {
	switch {
	case v.State != kmspb.CryptoKeyVersion_DESTROYED && v.State != kmspb.CryptoKeyVersion_IMPORT_FAILED:
		return invalid("version %s is %s: only a DESTROYED or IMPORT_FAILED version can take its material again (a DESTROY_SCHEDULED one: wait for its destroy time)", v.Name, v.State)
	case v.ImportJob == "":
		return invalid("version %s was generated by Cloud KMS, not imported, so it cannot be re-imported", v.Name)
	case v.Algorithm != alg.PB:
		return invalid("version %s is %s, but the bundle is for %s material: re-import needs the same algorithm and material", v.Name, v.Algorithm, alg.Name)
	}
	return nil
}

// attestPrepare checks the job's wrapping key online: its attestation
// against the roots when they were given (as the one-pass import does),
// else only its shape; the offline wrap verifies the attestation anyway.
func (r *run) attestPrepare(ctx context.Context) (string, error) {
	if len(r.roots.Manufacturer) > 0 {
		return r.attest(ctx)
	}
	pub, err := jobPublicKey(r.job, r.wrap)
	if err != nil {
		return "", err
	}
	r.pub = pub
	der, _ := x509.MarshalPKIXPublicKey(pub)
	r.res.WrappingPublicKeySHA256 = kmsimport.Fingerprint(der)
	if r.job.ProtectionLevel == kmspb.ProtectionLevel_SOFTWARE {
		r.res.Attestation.Status = "none: SOFTWARE protection level, the wrapping key is not in an HSM and nothing attests it"
		r.res.Warnings = append(r.res.Warnings, "SOFTWARE import job: Cloud KMS offers no attestation of its wrapping key")
	} else {
		if r.job.GetAttestation() == nil {
			return "", fmt.Errorf("%w: HSM import job %s carries no attestation, so its wrapping key cannot be shown to be in Google's HSM: no bundle was written", kmsimport.ErrVerification, r.job.Name)
		}
		r.res.Attestation.Status = "not verified online (no roots given to prepare): the bundle carries it, and wrap verifies it offline before anything is wrapped"
	}
	return r.res.Attestation.Status, nil
}

// jobPublicKey is the job's wrapping key: one PEM RSA key of the method's
// size.
func jobPublicKey(j *kmspb.ImportJob, w kmsimport.CloudWrap) (*rsa.PublicKey, error) {
	blk, rest := pem.Decode([]byte(j.GetPublicKey().GetPem()))
	if blk == nil || blk.Type != "PUBLIC KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: import job %s has no PEM public key", kmsimport.ErrVerification, j.Name)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	pub, ok := k.(*rsa.PublicKey)
	if err != nil || !ok || pub.N.BitLen() != w.RSABits {
		return nil, fmt.Errorf("%w: import job %s's public key is not the RSA-%d key %s uses", kmsimport.ErrVerification, j.Name, w.RSABits, w.Name)
	}
	return pub, nil
}

// WrapRequest is the offline step of the split: the HSM key, and the
// roots the job's attestation is verified against.
type WrapRequest struct {
	KeyLabel string
	KeyID    []byte
	Generate bool
	// ManufacturerRoot and OwnerRoot are files on the offline host;
	// required for an HSM job unless SkipAttestation.
	ManufacturerRoot, OwnerRoot string
	SkipAttestation             bool
}

// WrapBundle verifies the bundle's attestation, then finds or generates
// the HSM key, wraps it inside the token under the job's key with the
// job's method, and gathers the HSM's evidence. It needs no network. b
// was read with kmsimport.ReadBundle and its fingerprint confirmed.
func (im *Importer) WrapBundle(b *kmsimport.Bundle, bundleSHA256 string, wr WrapRequest) (*kmsimport.Wrapped, *Result, error) {
	im.defaults()
	req := Request{Algorithm: b.KeySpec, ProtectionLevel: b.Gcp.ProtectionLevel, ReimportVersion: b.Gcp.ReimportVersion,
		KeyLabel: wr.KeyLabel, KeyID: wr.KeyID, Generate: wr.Generate,
		ManufacturerRoot: wr.ManufacturerRoot, OwnerRoot: wr.OwnerRoot, SkipAttestation: wr.SkipAttestation}
	req.ParseKeyName(b.KeyId)
	r := &run{im: im, req: &req, res: &Result{Cloud: "gcp"}}
	var ev kmsimport.Evidence
	err := r.engine().Run(context.Background(), []kmsimport.Step{
		{Name: StepValidate, Run: r.validate},
		// The job's wrapping key is proven before the token is touched: no
		// HSM key is found, generated or wrapped under an unproven key.
		{Name: StepAttest, Run: r.attestBundle(b)},
		{Name: StepSelectKey, Run: r.selectKey},
		{Name: StepProbe, Run: r.probeBundle},
		{Name: StepGenerate, Run: r.generate},
		{Name: StepWrap, Run: r.wrapKey},
		{Name: StepEvidence, Run: func(context.Context) (string, error) {
			var err error
			ev, err = r.evidence()
			return "gathered the HSM's evidence for the upload's proof", err
		}}})
	if err != nil {
		return nil, r.res, err
	}
	h := r.res.HSM
	return &kmsimport.Wrapped{
		Format: kmsimport.WrappedFormat, Cloud: kmsimport.CloudGCP, BundleSha256: bundleSHA256,
		KeyId: b.KeyId, Region: b.Region, KeySpec: b.KeySpec, WrappingAlgorithm: b.WrappingAlgorithm, WrappingKeySpec: b.WrappingKeySpec,
		PublicKeySha256: b.PublicKeySha256, ImportToken: b.ImportToken, ImportTokenSha256: b.ImportTokenSha256, ParametersValidTo: b.ParametersValidTo,
		EncryptedKeyMaterial: r.wrapped, EncryptedKeyMaterialSha256: r.res.WrappedKeySHA256,
		Token: h.Token, HSMKey: kmsimport.HSMKey{Token: h.Token, KeyLabel: h.KeyLabel, KeyID: h.KeyID, KeyCheckValue: h.KeyCheckValue, Generated: h.Generated},
		Evidence: ev, Warnings: r.res.Warnings, WrappedAt: im.now().UTC(),
		Gcp: &kmsimport.GCPWrapped{ProtectionLevel: b.Gcp.ProtectionLevel, ReimportVersion: b.Gcp.ReimportVersion, Attestation: r.res.Attestation.Status},
	}, r.res, nil
}

// attestBundle rebuilds the import job from the bundle and runs the same
// attestation check as the one-pass import, at the job's generate time.
func (r *run) attestBundle(b *kmsimport.Bundle) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		_, w, ok := methodOf(b.WrappingAlgorithm)
		if !ok {
			return "", invalid("the bundle's import method %q is not one kmsbridge wraps for", kmsimport.Excerpt(b.WrappingAlgorithm))
		}
		r.wrap, r.res.ImportMethod = w, w.Name
		r.res.CryptoKey, r.res.ImportJob, r.res.ProtectionLevel = b.KeyId, string(b.ImportToken), b.Gcp.ProtectionLevel
		r.job = &kmspb.ImportJob{Name: string(b.ImportToken), ProtectionLevel: r.req.protection(),
			PublicKey:    &kmspb.ImportJob_WrappingPublicKey{Pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b.PublicKey}))},
			GenerateTime: timestamppb.New(b.Gcp.JobGenerateTime)}
		if a := b.Gcp.Attestation; a != nil {
			r.job.Attestation = &kmspb.KeyOperationAttestation{Format: kmspb.KeyOperationAttestation_AttestationFormat(a.Format), Content: a.Content,
				CertChains: &kmspb.KeyOperationAttestation_CertificateChains{CaviumCerts: a.CaviumCerts, GoogleCardCerts: a.GoogleCardCerts, GooglePartitionCerts: a.GooglePartitionCerts}}
		}
		return r.attest(ctx)
	}
}

// bundleTarget offers only the bundle's import method: the job fixed it.
type bundleTarget struct{ w kmsimport.CloudWrap }

func (bundleTarget) Cloud() string { return "this bundle's import job" }
func (t bundleTarget) WrapMethods(p hsm.KeyParams) []kmsimport.CloudWrap {
	if !t.w.Method.RSAAES && !p.Secret() {
		return nil
	}
	return []kmsimport.CloudWrap{t.w}
}

// probeBundle checks the token can perform the job's method for the key.
func (r *run) probeBundle(context.Context) (string, error) {
	r.res.Algorithm, r.res.Purpose = r.alg.Name, r.alg.Purpose.String()
	_, notes, err := kmsimport.ChooseCloudWrap(r.im.Token, bundleTarget{r.wrap}, r.alg.HSM, r.req.Generate && r.key == nil)
	if err != nil {
		return "", fmt.Errorf("%w (the import method was chosen at prepare: run prepare --cloud gcp --import-method with one this token performs)", err)
	}
	r.res.Warnings = append(r.res.Warnings, notes...)
	return fmt.Sprintf("the token can wrap %s material with %s, the job's import method", r.alg.Name, r.wrap.Name), nil
}

// evidence is what the upload checks Cloud KMS against: the HSM's public
// key (asymmetric), its HMAC of a random message (MAC), the key check
// value (symmetric, which Cloud KMS can only round-trip).
func (r *run) evidence() (kmsimport.Evidence, error) {
	ev := kmsimport.Evidence{KeyCheckValue: r.key.CheckValueHex()}
	switch r.alg.Purpose {
	case kmspb.CryptoKey_ENCRYPT_DECRYPT:
	case kmspb.CryptoKey_MAC:
		ev.MacMessage = make([]byte, 32)
		if _, err := rand.Read(ev.MacMessage); err != nil {
			return ev, err
		}
		mac, err := r.im.Token.HMAC(r.key, r.alg.MacHash, ev.MacMessage)
		if err != nil {
			return ev, err
		}
		ev.Mac = mac
	default:
		der, err := r.im.Token.PublicKeyDER(r.key)
		if err != nil {
			return ev, err
		}
		ev.PublicKey = der
	}
	return ev, nil
}

// Upload imports the wrapped material into Cloud KMS and proves it. w was
// read with kmsimport.ReadWrapped and its integrity checked.
func (im *Importer) Upload(ctx context.Context, w *kmsimport.Wrapped) (*Result, error) {
	im.defaults()
	req := Request{Algorithm: w.KeySpec, ProtectionLevel: w.Gcp.ProtectionLevel, ReimportVersion: w.Gcp.ReimportVersion}
	req.ParseKeyName(w.KeyId)
	req.ImportJob = string(w.ImportToken)[strings.LastIndex(string(w.ImportToken), "/")+1:]
	r := &run{im: im, req: &req, res: &Result{Cloud: "gcp", CryptoKey: w.KeyId, ImportMethod: w.WrappingAlgorithm, ProtectionLevel: req.ProtectionLevel,
		WrappingPublicKeySHA256: w.PublicKeySha256, WrappedKeySHA256: w.EncryptedKeyMaterialSha256,
		Attestation: Attestation{Status: "at wrap: " + w.Gcp.Attestation, Verified: strings.HasPrefix(w.Gcp.Attestation, "verified")}}}
	r.alg, _ = ParseAlgorithm(w.KeySpec)
	_, r.wrap, _ = methodOf(w.WrappingAlgorithm)
	r.res.Algorithm, r.res.Purpose = r.alg.Name, r.alg.Purpose.String()
	id, _ := hexID(w.HSMKey.KeyID)
	r.key = &hsm.Key{Label: w.HSMKey.KeyLabel, ID: id}
	r.res.HSM = HSMKey{Token: w.Token, KeyLabel: w.HSMKey.KeyLabel, KeyID: w.HSMKey.KeyID, KeyCheckValue: w.HSMKey.KeyCheckValue, Generated: w.HSMKey.Generated}
	r.wrapped = w.EncryptedKeyMaterial
	r.res.Warnings = append(r.res.Warnings, w.Warnings...)
	err := r.engine().Run(ctx, []kmsimport.Step{
		{Name: StepCheck, Run: r.checkUpload(w)},
		{Name: StepCreateKey, Run: r.createKey},
		{Name: StepImport, Run: r.importVersion},
		{Name: StepWaitVersion, Run: r.waitVersion},
		{Name: StepVerify, Run: r.verifyEvidence(w.Evidence)}})
	return r.res, err
}

// checkUpload reads Cloud KMS, changing nothing: the crypto key absent or
// labelled with this HSM key, an import an earlier upload made (then
// nothing is imported again), else the import job still ACTIVE, with the
// very wrapping key the material was wrapped under, and not about to
// expire.
func (r *run) checkUpload(w *kmsimport.Wrapped) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		api := r.im.KMS
		var said []string
		if _, err := api.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: r.req.ring()}); err != nil {
			if isCode(err, codes.NotFound) {
				return "", invalid("key ring %s, which holds the bundle's import job, does not exist at this endpoint: upload where prepare ran (same project, --endpoint-url)", r.req.ring())
			}
			return "", explain("GetKeyRing", err)
		}
		r.ringExists = true
		if err := r.readCryptoKey(ctx); err != nil {
			return "", err
		}
		if r.keyExists {
			said = append(said, "crypto key exists and is labelled with this HSM key")
		} else {
			said = append(said, "crypto key "+r.req.CryptoKey+" will be created, import-only, labelled with the HSM key")
		}
		if r.req.ReimportVersion != "" && r.keyExists {
			v, err := api.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: r.req.key() + "/cryptoKeyVersions/" + r.req.ReimportVersion})
			if err != nil {
				return "", explain("GetCryptoKeyVersion", err)
			}
			if v.State == kmspb.CryptoKeyVersion_ENABLED && v.Algorithm == r.alg.PB && v.ImportJob == string(w.ImportToken) {
				r.version = v // a re-run after the re-import: the proof decides
			} else if err := reimportable(v, r.alg); err != nil {
				return "", err
			}
		}
		if r.keyExists && r.version == nil {
			if err := r.findEarlierImport(ctx); err != nil {
				return "", err
			}
		}
		if r.version != nil {
			said = append(said, "an earlier upload imported version "+r.version.Name+": nothing is imported again")
			return strings.Join(said, "; "), nil
		}
		j, err := api.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: string(w.ImportToken)})
		if err != nil {
			if isCode(err, codes.NotFound) {
				return "", invalid("import job %s does not exist at this endpoint: upload where prepare ran", w.ImportToken)
			}
			return "", explain("GetImportJob", err)
		}
		if err := r.useJob(j); err != nil {
			return "", fmt.Errorf("%w; the material wrapped for it cannot be imported: run prepare --cloud gcp, wrap and upload again", err)
		}
		if j.State != kmspb.ImportJob_ACTIVE {
			return "", invalid("import job %s is %s, not ACTIVE: run prepare --cloud gcp, wrap and upload again", j.Name, j.State)
		}
		pub, err := jobPublicKey(j, r.wrap)
		if err != nil {
			return "", err
		}
		der, _ := x509.MarshalPKIXPublicKey(pub)
		if kmsimport.Fingerprint(der) != w.PublicKeySha256 {
			return "", fmt.Errorf("%w: import job %s now has wrapping key SHA-256 %s, not the %s the material was wrapped under: do not upload; prepare, wrap and upload again", kmsimport.ErrVerification, j.Name, kmsimport.Fingerprint(der), w.PublicKeySha256)
		}
		said = append(said, "import job "+j.Name+" is ACTIVE with the wrapping key the material was wrapped under")
		return strings.Join(said, "; "), nil
	}
}

// verifyEvidence proves the version holds the HSM's material from the
// evidence the wrap gathered: GetPublicKey equal to the HSM's public key,
// MacSign equal to the HSM's HMAC, or (symmetric) an Encrypt/Decrypt
// round trip, which needs no evidence.
func (r *run) verifyEvidence(ev kmsimport.Evidence) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		api, v, p := r.im.KMS, r.version, &r.res.Proof
		switch r.alg.Purpose {
		case kmspb.CryptoKey_ENCRYPT_DECRYPT:
			return r.verify(ctx) // uses no token for symmetric keys
		case kmspb.CryptoKey_MAC:
			if len(ev.MacMessage) == 0 || len(ev.Mac) == 0 {
				return "", fmt.Errorf("%w: the wrapped file carries no HMAC evidence from the HSM to check Cloud KMS against", kmsimport.ErrVerification)
			}
			out, err := api.MacSign(ctx, &kmspb.MacSignRequest{Name: v.Name, Data: ev.MacMessage, DataCrc32C: crc(ev.MacMessage)})
			if err != nil {
				return "", explain("MacSign", err)
			}
			if string(out.Mac) != string(ev.Mac) {
				return "", fmt.Errorf("%w: Cloud KMS MacSign of the wrap's message is %x, the HSM's HMAC is %x: version %s does not hold the HSM key's material", kmsimport.ErrVerification, out.Mac, ev.Mac, v.Name)
			}
			p.MaterialConfirmed, p.Mac = true, fmt.Sprintf("%x", out.Mac)
			p.Summary = fmt.Sprintf("Cloud KMS MacSign equals the HSM's own %s of the wrap's random message", r.alg.Name)
		default:
			if len(ev.PublicKey) == 0 {
				return "", fmt.Errorf("%w: the wrapped file carries no HSM public key to check Cloud KMS against", kmsimport.ErrVerification)
			}
			pk, err := api.GetPublicKey(ctx, &kmspb.GetPublicKeyRequest{Name: v.Name})
			if err != nil {
				return "", explain("GetPublicKey", err)
			}
			if pk.GetPemCrc32C() != nil && pk.GetPemCrc32C().GetValue() != crc([]byte(pk.Pem)).GetValue() {
				return "", fmt.Errorf("%w: Cloud KMS GetPublicKey's checksum does not match its PEM", kmsimport.ErrVerification)
			}
			blk, _ := pem.Decode([]byte(pk.Pem))
			if blk == nil || !sameSPKI(blk.Bytes, ev.PublicKey) {
				return "", fmt.Errorf("%w: Cloud KMS's public key of %s is not the HSM key's: the version does not hold the HSM's material", kmsimport.ErrVerification, v.Name)
			}
			p.MaterialConfirmed, p.PublicKeySHA256 = true, kmsimport.Fingerprint(ev.PublicKey)
			p.Summary = fmt.Sprintf("Cloud KMS GetPublicKey equals the HSM's public key, SHA-256 %s", p.PublicKeySHA256)
		}
		return p.Summary, nil
	}
}

var (
	jobNameRE = lazyre.New(`^(projects/[^/]+/locations/[^/]+/keyRings/[^/]+)/importJobs/([a-zA-Z0-9_-]{1,63})$`)
	rsaSpecRE = lazyre.New(`^RSA_(3072|4096)$`)
)

// checkTarget checks what a Google bundle and wrapped file share.
func checkTarget(path, keyID, region, alg, method, spec string, token []byte, protection, reimport string) error {
	var req Request
	if !req.ParseKeyName(keyID) {
		return invalid("%s: KeyId %q is not a crypto key's resource name: the file was altered", path, kmsimport.Excerpt(keyID))
	}
	req.Algorithm, req.ProtectionLevel, req.ReimportVersion = alg, protection, reimport
	if protection != "HSM" && protection != "SOFTWARE" {
		return invalid("%s: ProtectionLevel %q is neither HSM nor SOFTWARE: the file was altered", path, kmsimport.Excerpt(protection))
	}
	if err := req.ValidateTarget(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if alg == "" {
		return invalid("%s: no Cloud KMS algorithm (KeySpec): the file was altered", path)
	}
	if region != "" && region != req.Location {
		return invalid("%s: Region %q is not the crypto key's location %q: the file was altered", path, kmsimport.Excerpt(region), req.Location)
	}
	a, _ := ParseAlgorithm(alg)
	w, err := offeredMethod(method, a)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if spec != fmt.Sprintf("RSA_%d", w.RSABits) || !rsaSpecRE.MatchString(spec) {
		return invalid("%s: WrappingKeySpec %q is not the RSA-%d key %s uses: the file was altered", path, kmsimport.Excerpt(spec), w.RSABits, w.Name)
	}
	m := jobNameRE.FindStringSubmatch(string(token))
	if m == nil || m[1] != req.ring() {
		return invalid("%s: ImportToken %q is not an import job of key ring %s: the file was altered", path, kmsimport.Excerpt(string(token)), req.ring())
	}
	return nil
}

func checkBundle(path string, b *kmsimport.Bundle) error {
	g := b.Gcp
	if err := checkTarget(path, b.KeyId, b.Region, b.KeySpec, b.WrappingAlgorithm, b.WrappingKeySpec, b.ImportToken, g.ProtectionLevel, g.ReimportVersion); err != nil {
		return err
	}
	switch {
	case g.ProtectionLevel == "HSM" && g.Attestation == nil:
		return fmt.Errorf("%w: %s: the bundle is for an HSM import job but carries no attestation of its wrapping key: it was altered, or not made by kmsbridge prepare; run prepare --cloud gcp again", kmsimport.ErrVerification, path)
	case g.ProtectionLevel == "SOFTWARE" && g.Attestation != nil:
		return invalid("%s: a SOFTWARE import job has no attestation, yet the bundle carries one: the file was altered", path)
	case g.JobGenerateTime.IsZero():
		return invalid("%s: JobGenerateTime is missing: the file was altered", path)
	}
	if a := g.Attestation; a != nil && (len(a.Content) > attest.MaxContent || len(a.CaviumCerts)+len(a.GoogleCardCerts)+len(a.GooglePartitionCerts) > 16) {
		return fmt.Errorf("%w: %s: the attestation is larger than any Cloud KMS publishes: the file was altered", kmsimport.ErrVerification, path)
	}
	return nil
}

func checkWrapped(path string, w *kmsimport.Wrapped) error {
	g := w.Gcp
	if err := checkTarget(path, w.KeyId, w.Region, w.KeySpec, w.WrappingAlgorithm, w.WrappingKeySpec, w.ImportToken, g.ProtectionLevel, g.ReimportVersion); err != nil {
		return err
	}
	if _, err := hexID(w.HSMKey.KeyID); err != nil {
		return invalid("%s: HsmKey.KeyId %q is not hex: use the file kmsbridge wrote, unedited", path, kmsimport.Excerpt(w.HSMKey.KeyID))
	}
	return nil
}

// checkBundleEndpoint applies Google's endpoint rule offline: a bundle
// from an endpoint that is not Google's is wrapped for only when
// --allow-endpoint names it on this host too.
func checkBundleEndpoint(b *kmsimport.Bundle, allow string) error {
	var allowed []string
	if allow != "" {
		allowed = []string{allow}
	}
	if err := CheckEndpoint(b.KmsEndpoint.URL, allowed); err != nil {
		return fmt.Errorf("%w (the bundle's wrapping public key came from %s; if that endpoint was meant, confirm it on this host too: --allow-endpoint %s)", err, kmsimport.Excerpt(b.KmsEndpoint.URL), kmsimport.Excerpt(b.KmsEndpoint.URL))
	}
	return nil
}

func hexID(s string) ([]byte, error) {
	var b []byte
	_, err := fmt.Sscanf(s, "%x", &b)
	if err != nil || len(s) == 0 || fmt.Sprintf("%x", b) != s {
		return nil, fmt.Errorf("not lowercase hex")
	}
	return b, nil
}
