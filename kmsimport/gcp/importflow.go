package gcp

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"
	locationpb "google.golang.org/genproto/googleapis/cloud/location"
	"google.golang.org/grpc/codes"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// Steps, in order.
const (
	StepValidate    = "validate"
	StepSelectKey   = "select-hsm-key"
	StepProbe       = "probe-wrapping"
	StepCheck       = "check-gcp"
	StepGenerate    = "generate-hsm-key"
	StepCreateRing  = "create-key-ring"
	StepCreateKey   = "create-crypto-key"
	StepCreateJob   = "create-import-job"
	StepWaitJob     = "wait-import-job"
	StepAttest      = "verify-attestation"
	StepWrap        = "wrap"
	StepImport      = "import"
	StepWaitVersion = "wait-enabled"
	StepVerify      = "verify"
	journalOpImport = "ImportCryptoKeyVersion"
	journalOpJob    = "CreateImportJob"
)

// Labels linking a CryptoKey to its HSM master copy, so a re-run adopts
// only a key that is provably its own.
const (
	LabelHSMKeyID    = "kmsbridge-hsm-key-id"
	LabelTokenSerial = "kmsbridge-token-serial"
)

// Importer runs the import into Cloud KMS against one token.
type Importer struct {
	KMS     API
	Token   kmsimport.Token
	Journal *journal.Journal
	Log     *slog.Logger
	Observe func(kmsimport.StepEvent)
	Now     func() time.Time
	// Halt, when set, is asked after every step whether the flow must
	// stop (the ceremony record could not be written).
	Halt func() error
	// Owner is the ownership authority that decides whether an HSM key
	// found may be taken up or adopted (--adopt); nil is one over Journal
	// that adopts nothing.
	Owner *ownership.Authority
	// Command names the kmsbridge command in the journal ("import").
	Command string
	// Poll is the interval between state checks; Wait bounds each wait.
	Poll, Wait time.Duration
}

type run struct {
	im   *Importer
	req  *Request
	res  *Result
	alg  Algorithm
	key  *hsm.Key
	wrap kmsimport.CloudWrap

	roots      attest.Roots
	ringExists bool
	keyExists  bool
	job        *kmspb.ImportJob
	pub        *rsa.PublicKey
	wrapped    []byte
	version    *kmspb.CryptoKeyVersion // resumed or imported
	changed    []string                // what this run (or one it resumed) made
}

// Run imports the HSM key's material into Cloud KMS: everything checkable
// first, the job's attestation before the wrap, and a proof at the end. A
// failed step is a *kmsimport.StepError saying what exists and that
// re-running the same command finishes the job.
func (im *Importer) Run(ctx context.Context, req Request) (*Result, error) {
	if im.Poll == 0 {
		im.Poll = 500 * time.Millisecond
	}
	if im.Wait == 0 {
		im.Wait = 10 * time.Minute
	}
	r := &run{im: im, req: &req, res: &Result{Cloud: "gcp"}}
	err := r.engine().Run(ctx, []kmsimport.Step{
		{Name: StepValidate, Run: r.validate},
		{Name: StepSelectKey, Run: r.selectKey},
		{Name: StepProbe, Run: r.probe},
		{Name: StepCheck, Run: r.check},
		// The wrapping key is proven before anything that cannot be
		// undone: an HSM key, a crypto key (Cloud KMS never deletes one).
		// Only the key ring (a container) and the job (which expires)
		// precede the attestation, because the job lives in the ring.
		{Name: StepCreateRing, Run: r.createRing},
		{Name: StepCreateJob, Run: r.createJob},
		{Name: StepWaitJob, Run: r.waitJob},
		{Name: StepAttest, Run: r.attest},
		{Name: StepGenerate, Run: r.generate},
		{Name: StepCreateKey, Run: r.createKey},
		{Name: StepWrap, Run: r.wrapKey},
		{Name: StepImport, Run: r.importVersion},
		{Name: StepWaitVersion, Run: r.waitVersion},
		{Name: StepVerify, Run: r.verify},
	})
	return r.res, err
}

func (im *Importer) now() time.Time {
	if im.Now != nil {
		return im.Now()
	}
	return time.Now()
}

func (im *Importer) command() string {
	if im.Command == "" {
		return "import"
	}
	return im.Command
}

// engine is the step engine (kmsimport/engine.go) over this run, which
// a re-run finishes.
func (r *run) engine() kmsimport.Engine {
	flow := kmsimport.RerunFlow{Made: &r.changed, Steps: &r.res.Steps, Token: &r.res.HSM.Token, Journal: r.im.Journal, Of: r.facts}
	return kmsimport.Engine{Flow: flow, Journal: r.im.Journal, Command: r.im.command(), Log: r.im.Log, Observe: r.im.Observe, Now: r.im.Now, Halt: r.im.Halt}
}

// facts is what the run has established, for the ceremony record.
func (r *run) facts() map[string]string {
	facts := map[string]string{"Cloud": "gcp", "CryptoKey": r.res.CryptoKey}
	for k, v := range map[string]string{"CryptoKeyVersion": r.res.CryptoKeyVersion, "ImportJob": r.res.ImportJob,
		"ImportMethod": r.res.ImportMethod, "WrappingPublicKeySha256": r.res.WrappingPublicKeySHA256,
		"Attestation": r.res.Attestation.Status, "WrappedKeySha256": r.res.WrappedKeySHA256,
		"HsmKeyLabel": r.res.HSM.KeyLabel, "HsmKeyId": r.res.HSM.KeyID, "ProofSummary": r.res.Proof.Summary} {
		if v != "" {
			facts[k] = v
		}
	}
	return facts
}

func (r *run) validate(context.Context) (string, error) {
	if err := r.req.Validate(); err != nil {
		return "", err
	}
	r.res.CryptoKey = r.req.key()
	r.res.ProtectionLevel = r.req.ProtectionLevel
	if r.req.Algorithm != "" || r.req.Generate {
		name := r.req.Algorithm
		if name == "" {
			name = "GOOGLE_SYMMETRIC_ENCRYPTION"
		}
		r.alg, _ = ParseAlgorithm(name)
	}
	if r.req.ProtectionLevel == "HSM" && !r.req.SkipAttestation {
		roots, err := attest.LoadRoots(r.req.ManufacturerRoot, r.req.OwnerRoot)
		if err != nil {
			if errors.Is(err, attest.ErrAttestation) {
				return "", fmt.Errorf("%w: %v", kmsimport.ErrInvalidInput, err)
			}
			return "", err
		}
		r.roots = roots
	}
	return "request is complete and consistent", nil
}

// selectKey chooses the HSM key through the HSM side every cloud shares
// (kmsimport.ChooseHSMKey): the ownership authority decides what may be
// taken up or adopted.
func (r *run) selectKey(context.Context) (string, error) {
	r.res.HSM.Token = r.im.Token.Identity()
	generate := r.req.Generate
	ch, err := kmsimport.ChooseHSMKey(r.im.Token, r.im.Owner, r.im.Journal, kmsimport.KeyChoice{
		Label: r.req.KeyLabel, ID: r.req.KeyID, Generate: r.req.Generate,
		Params: r.alg.HSM, Known: r.alg.Name != "", Kind: r.algorithmOf,
		Kinds: []hsm.KeyParams{hsm.AES256(), hsm.HMACKey(32), hsm.RSAKey(0), hsm.ECKey(hsm.P256)},
		What:  "secret or private key", NotFound: ", or give --gcp-algorithm, or create it with --generate", Command: r.im.command(),
	})
	r.res.Warnings = append(r.res.Warnings, ch.Warnings...)
	if ch.Key != nil {
		r.req.Generate = false
		r.setKey(ch.Key, ch.Generated)
		r.res.HSM.Adopted = ch.Adopted
		if ch.Resumed != "" {
			r.res.Resumed = append(r.res.Resumed, ch.Resumed)
		}
	}
	if err != nil {
		return "", err
	}
	if !generate {
		return ch.Summary + " for " + r.alg.Name, nil
	}
	return ch.Summary, nil
}

// algorithmOf is the Cloud KMS algorithm of an existing HSM key the
// request named none for, which becomes the run's.
func (r *run) algorithmOf(k *hsm.Key) (hsm.KeyParams, error) {
	alg, err := AlgorithmOf(k)
	if err != nil {
		return hsm.KeyParams{}, err
	}
	r.alg = alg
	return alg.HSM, nil
}

func (r *run) setKey(k *hsm.Key, generated bool) {
	r.key = k
	r.res.HSM.Take(k, generated)
}

func (r *run) probe(context.Context) (string, error) {
	r.res.Algorithm, r.res.Purpose = r.alg.Name, r.alg.Purpose.String()
	w, notes, err := kmsimport.ChooseCloudWrap(r.im.Token, target{}, r.alg.HSM, r.req.Generate && r.key == nil)
	if err != nil {
		return "", err
	}
	r.wrap = w
	r.res.ImportMethod = w.Name
	r.res.Warnings = append(r.res.Warnings, notes...)
	return fmt.Sprintf("using %s, the strongest import method Cloud KMS offers for %s that the token can perform", w.Name, r.alg.Name), nil
}

// check reads Cloud KMS, changing nothing: the location, the key ring,
// the crypto key (ours, or absent), an existing import job or a
// re-import target, and what an earlier run of this import left.
func (r *run) check(ctx context.Context) (string, error) {
	api := r.im.KMS
	if _, err := api.GetLocation(ctx, &locationpb.GetLocationRequest{Name: r.req.location()}); err != nil {
		if isCode(err, codes.NotFound) {
			return "", invalid("Cloud KMS has no location %q in project %q: check --gcp-location (e.g. us-central1, europe-west1, global) and --gcp-project", r.req.Location, r.req.Project)
		}
		return "", explain("GetLocation", err)
	}
	var said []string
	if _, err := api.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: r.req.ring()}); err == nil {
		r.ringExists = true
		said = append(said, "key ring exists")
	} else if isCode(err, codes.NotFound) {
		said = append(said, "key ring "+r.req.KeyRing+" will be created")
	} else {
		return "", explain("GetKeyRing", err)
	}
	if r.ringExists {
		if err := r.readCryptoKey(ctx); err != nil {
			return "", err
		}
		if r.keyExists {
			said = append(said, "crypto key exists and is linked to this HSM key")
		} else {
			said = append(said, "crypto key "+r.req.CryptoKey+" will be created, import-only")
		}
	} else if r.req.ImportJob != "" || r.req.ReimportVersion != "" {
		return "", invalid("key ring %s does not exist, so it holds no import job or version to use: check --key-ring, or drop --import-job/--crypto-key-version", r.req.ring())
	}
	if r.req.ImportJob != "" {
		j, err := api.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: r.req.ring() + "/importJobs/" + r.req.ImportJob})
		if err != nil {
			if isCode(err, codes.NotFound) {
				return "", invalid("import job %s does not exist in key ring %s: check --import-job, or drop it to have one created", r.req.ImportJob, r.req.ring())
			}
			return "", explain("GetImportJob", err)
		}
		if err := r.useJob(j); err != nil {
			return "", err
		}
		said = append(said, "import job "+r.req.ImportJob+" is usable")
	}
	if r.req.ReimportVersion != "" {
		if !r.keyExists {
			return "", invalid("crypto key %s does not exist, so it has no version %s to re-import into", r.req.key(), r.req.ReimportVersion)
		}
		v, err := api.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: r.req.key() + "/cryptoKeyVersions/" + r.req.ReimportVersion})
		if err != nil {
			if isCode(err, codes.NotFound) {
				return "", invalid("crypto key %s has no version %s: check --crypto-key-version", r.req.key(), r.req.ReimportVersion)
			}
			return "", explain("GetCryptoKeyVersion", err)
		}
		switch {
		case v.State == kmspb.CryptoKeyVersion_ENABLED && v.Algorithm == r.alg.PB:
			// A re-run after the re-import: the proof decides.
			r.version = v
		case v.State != kmspb.CryptoKeyVersion_DESTROYED && v.State != kmspb.CryptoKeyVersion_IMPORT_FAILED:
			return "", invalid("version %s is %s: only a DESTROYED or IMPORT_FAILED version can take its material again (a DESTROY_SCHEDULED one: wait for its destroy time)", v.Name, v.State)
		case v.ImportJob == "":
			return "", invalid("version %s was generated by Cloud KMS, not imported, so it cannot be re-imported", v.Name)
		case v.Algorithm != r.alg.PB:
			return "", invalid("version %s is %s, but the HSM key is %s material: re-import needs the same algorithm and material", v.Name, v.Algorithm, r.alg.Name)
		}
		said = append(said, "version "+r.req.ReimportVersion+" takes the material again")
	}
	if r.keyExists && r.version == nil {
		if err := r.findEarlierImport(ctx); err != nil {
			return "", err
		}
		if r.version != nil {
			said = append(said, "an earlier run imported version "+r.version.Name)
		}
	}
	if r.job == nil && r.version == nil && r.ringExists {
		if err := r.findEarlierJob(ctx); err != nil {
			return "", err
		}
	}
	return strings.Join(said, "; "), nil
}

// checkExistingKey adopts an existing crypto key only with proof it is
// this HSM key's: its labels, and a purpose and protection level the
// import can use.
// readCryptoKey reads the crypto key, changing nothing: absent, or present
// and checked to be this HSM key's import-only key (keyExists), for the
// one-pass import and the split's upload alike.
func (r *run) readCryptoKey(ctx context.Context) error {
	ck, err := r.im.KMS.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: r.req.key()})
	switch {
	case err == nil:
		if err := r.checkExistingKey(ck); err != nil {
			return err
		}
		r.keyExists = true
		return nil
	case isCode(err, codes.NotFound):
		return nil
	}
	return explain("GetCryptoKey", err)
}

func (r *run) checkExistingKey(ck *kmspb.CryptoKey) error {
	if ck.Purpose != r.alg.Purpose {
		return invalid("crypto key %s has purpose %s, but %s material needs %s: choose another --crypto-key", ck.Name, ck.Purpose, r.alg.Name, r.alg.Purpose)
	}
	if pl := ck.GetVersionTemplate().GetProtectionLevel(); pl != r.req.protection() {
		return invalid("crypto key %s has protection level %s, but the import job would be %s: give --gcp-protection-level %s, or another --crypto-key", ck.Name, pl, r.req.ProtectionLevel, pl)
	}
	want := r.labels()
	if r.key == nil || ck.Labels[LabelHSMKeyID] != want[LabelHSMKeyID] || ck.Labels[LabelTokenSerial] != want[LabelTokenSerial] {
		return invalid("crypto key %s exists but its labels do not link it to this HSM key (%s=%q, %s=%q): kmsbridge imports only into a key it created for this HSM key; choose a new --crypto-key", ck.Name, LabelHSMKeyID, ck.Labels[LabelHSMKeyID], LabelTokenSerial, ck.Labels[LabelTokenSerial])
	}
	return nil
}

// labels link a crypto key to the HSM key; label values are lowercase
// letters, digits, '_' and '-', at most 63 characters.
func (r *run) labels() map[string]string {
	id := ""
	if r.key != nil {
		id = r.key.IDHex()
		if len(id) > 63 {
			s := sha256.Sum256(r.key.ID)
			id = "sha256-" + hex.EncodeToString(s[:])[:56]
		}
	}
	serial := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			return c
		case c >= 'A' && c <= 'Z':
			return c + 'a' - 'A'
		}
		return '_'
	}, strings.TrimSpace(r.res.HSM.Token.Serial))
	if len(serial) > 63 {
		serial = serial[:63]
	}
	return map[string]string{LabelHSMKeyID: id, LabelTokenSerial: serial}
}

// useJob takes an import job the operator named: it must be usable now.
func (r *run) useJob(j *kmspb.ImportJob) error {
	if j.State == kmspb.ImportJob_EXPIRED {
		return invalid("import job %s expired at %s and can import nothing: drop --import-job to have a new one created", j.Name, j.GetExpireTime().AsTime().UTC().Format(time.RFC3339))
	}
	if j.ProtectionLevel != r.req.protection() {
		return invalid("import job %s has protection level %s, but the crypto key's is %s: give --gcp-protection-level %s, or drop --import-job", j.Name, j.ProtectionLevel, r.req.ProtectionLevel, j.ProtectionLevel)
	}
	w, ok := wrapOf(j.ImportMethod)
	if !ok {
		return invalid("import job %s uses %s, which kmsbridge does not wrap for: drop --import-job to have one created", j.Name, j.ImportMethod)
	}
	if w.Name != r.wrap.Name {
		if _, err := r.im.Token.Check(hsm.Ask{Key: r.alg.HSM, Generate: r.req.Generate && r.key == nil, Wrap: w.Method}); err != nil {
			return fmt.Errorf("%w: import job %s uses %s, which the token cannot perform for %s (%v): drop --import-job to have a %s job created", kmsimport.ErrInvalidInput, j.Name, w.Name, r.alg.Name, err, r.wrap.Name)
		}
		if !r.alg.secret() && !w.Method.RSAAES {
			return invalid("import job %s uses %s, which cannot carry %s material: drop --import-job", j.Name, w.Name, r.alg.Name)
		}
		r.wrap = w
		r.res.ImportMethod = w.Name
	}
	if left := j.GetExpireTime().AsTime().Sub(r.im.now()); left < 10*time.Minute {
		return invalid("import job %s expires in %s, too soon to wrap and import safely: drop --import-job to have a new one created", j.Name, left.Round(time.Second))
	}
	r.job = j
	r.res.ImportJob = j.Name
	return nil
}

// findEarlierImport looks in the journal for an import of this HSM key
// into this crypto key, and in Cloud KMS for the version it made: a
// re-run then finishes that version instead of importing again.
func (r *run) findEarlierImport(ctx context.Context) error {
	intents := r.im.Journal.Intents(journalOpImport, func(e journal.Entry) bool {
		return e.Target["CryptoKey"] == r.req.key() && e.Target["HsmKeyId"] == r.res.HSM.KeyID && e.Target["TokenSerial"] == r.res.HSM.Token.Serial
	})
	for _, in := range intents {
		out, ok := r.im.Journal.Outcome(in.Attempt)
		if ok && out.Result == journal.ResultFailed {
			continue
		}
		v, err := r.versionOf(ctx, in, out)
		if err != nil {
			return err
		}
		if v == nil {
			continue
		}
		switch v.State {
		case kmspb.CryptoKeyVersion_ENABLED, kmspb.CryptoKeyVersion_PENDING_IMPORT:
			r.version = v
			r.res.CryptoKeyVersion = v.Name
			r.res.ImportJob = v.ImportJob
			r.res.Resumed = append(r.res.Resumed, fmt.Sprintf("version %s, imported by an earlier run (journal attempt %s)", v.Name, in.Attempt))
			return nil
		}
	}
	return nil
}

// versionOf is the version an import intent made: named by its outcome,
// or, when the answer was lost, the one whose import job is the intent's.
func (r *run) versionOf(ctx context.Context, in, out journal.Entry) (*kmspb.CryptoKeyVersion, error) {
	if name := out.Facts["CryptoKeyVersion"]; name != "" {
		v, err := r.im.KMS.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: name})
		if isCode(err, codes.NotFound) {
			return nil, nil
		}
		return v, explain("GetCryptoKeyVersion", err)
	}
	it := r.im.KMS.ListCryptoKeyVersions(ctx, &kmspb.ListCryptoKeyVersionsRequest{Parent: r.req.key()})
	for {
		v, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return nil, nil
		}
		if err != nil {
			return nil, explain("ListCryptoKeyVersions", err)
		}
		if v.ImportJob == in.Find["ImportJob"] && (in.Find["CryptoKeyVersion"] == "" || in.Find["CryptoKeyVersion"] == v.Name) {
			return v, nil
		}
	}
}

// findEarlierJob reuses an import job an earlier run of this import
// created, while it can still be used.
func (r *run) findEarlierJob(ctx context.Context) error {
	intents := r.im.Journal.Intents(journalOpJob, func(e journal.Entry) bool {
		return e.Target["KeyRing"] == r.req.ring() && e.Target["CryptoKey"] == r.req.key() && e.Target["ImportMethod"] == r.wrap.Name
	})
	for _, in := range intents {
		j, err := r.im.KMS.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: in.Target["ImportJob"]})
		if isCode(err, codes.NotFound) {
			continue
		}
		if err != nil {
			return explain("GetImportJob", err)
		}
		if j.State == kmspb.ImportJob_EXPIRED || j.ProtectionLevel != r.req.protection() || j.GetExpireTime().AsTime().Sub(r.im.now()) < 10*time.Minute {
			continue
		}
		r.job = j
		r.res.ImportJob = j.Name
		r.changed = append(r.changed, "import job "+j.Name)
		r.res.Resumed = append(r.res.Resumed, "import job "+j.Name+", created by an earlier run")
		return nil
	}
	return nil
}

func (r *run) generate(context.Context) (string, error) {
	if !r.req.Generate || r.key != nil {
		return kmsimport.NotNeeded, nil
	}
	tok := r.res.HSM.Token
	k, err := kmsimport.GenerateHSMKey(r.im.Token, r.im.Journal, r.im.command(), r.req.KeyLabel, r.alg.HSM, false,
		map[string]string{"TokenLabel": tok.Label, "CryptoKey": r.req.key(), "Algorithm": r.alg.Name})
	if k != nil {
		r.setKey(k, true)
		r.changed = append(r.changed, fmt.Sprintf("HSM key %q (CKA_ID %s) in token %q", k.Label, k.IDHex(), tok.Label))
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("generated %s key %q (CKA_ID %s) in token %q: sensitive, extractable only by wrapping", r.alg.HSM, k.Label, k.IDHex(), tok.Label), nil
}

// journaled makes one change with its intent before and outcome after.
func (r *run) journaled(op string, target, find map[string]string, call func() (map[string]string, error)) error {
	p, err := r.im.Journal.Intend(journal.Intent{Command: r.im.command(), Op: op, Target: target, Find: find})
	if err != nil {
		return fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
	}
	facts, callErr := call()
	result := journal.ResultOK
	switch {
	case callErr != nil && lost(callErr):
		result = journal.ResultUnknown
	case callErr != nil:
		result = journal.ResultFailed
	}
	if jerr := p.Done(result, facts, callErr); jerr != nil {
		return errors.Join(callErr, fmt.Errorf("%w: %v", kmsimport.ErrJournal, jerr))
	}
	return callErr
}

func (r *run) createRing(ctx context.Context) (string, error) {
	if r.ringExists {
		return kmsimport.NotNeeded, nil
	}
	err := r.journaled("CreateKeyRing", map[string]string{"KeyRing": r.req.ring()}, nil, func() (map[string]string, error) {
		_, err := r.im.KMS.CreateKeyRing(ctx, &kmspb.CreateKeyRingRequest{Parent: r.req.location(), KeyRingId: r.req.KeyRing})
		if isCode(err, codes.AlreadyExists) {
			return nil, nil // made by our own lost call, retried by the client, or by someone else: key rings are only containers
		}
		return nil, err
	})
	if err != nil {
		return "", explain("CreateKeyRing", err)
	}
	r.res.KeyRingCreated = true
	r.changed = append(r.changed, "key ring "+r.req.ring()+" (an empty container; Cloud KMS never deletes key rings)")
	return "created key ring " + r.req.ring(), nil
}

func (r *run) createKey(ctx context.Context) (string, error) {
	if r.keyExists {
		return kmsimport.NotNeeded, nil
	}
	labels := r.labels()
	var adopted bool
	err := r.journaled("CreateCryptoKey", map[string]string{"CryptoKey": r.req.key(), "HsmKeyId": r.res.HSM.KeyID}, labels, func() (map[string]string, error) {
		_, err := r.im.KMS.CreateCryptoKey(ctx, &kmspb.CreateCryptoKeyRequest{Parent: r.req.ring(), CryptoKeyId: r.req.CryptoKey, SkipInitialVersionCreation: true,
			CryptoKey: &kmspb.CryptoKey{Purpose: r.alg.Purpose, ImportOnly: true, Labels: labels,
				VersionTemplate: &kmspb.CryptoKeyVersionTemplate{Algorithm: r.alg.PB, ProtectionLevel: r.req.protection()}}})
		if isCode(err, codes.AlreadyExists) {
			// A lost answer the client retried, or someone else's key:
			// adopt it only if its labels prove it is ours.
			ck, gerr := r.im.KMS.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: r.req.key()})
			if gerr != nil {
				return nil, gerr
			}
			if cerr := r.checkExistingKey(ck); cerr != nil {
				return nil, cerr
			}
			adopted = true
			return nil, nil
		}
		return nil, err
	})
	if err != nil {
		if errors.Is(err, kmsimport.ErrInvalidInput) {
			return "", err
		}
		return "", explain("CreateCryptoKey", err)
	}
	r.res.CryptoKeyCreated = !adopted
	r.changed = append(r.changed, "crypto key "+r.req.key()+" (import-only, no versions yet; Cloud KMS never deletes a crypto key)")
	return fmt.Sprintf("created import-only crypto key %s (%s, %s), labelled with the HSM key", r.req.key(), r.alg.Purpose, r.req.ProtectionLevel), nil
}

func (r *run) createJob(ctx context.Context) (string, error) {
	if r.job != nil || r.version != nil {
		return kmsimport.NotNeeded, nil
	}
	methodPB, _, _ := methodOf(r.wrap.Name)
	id := "kmsbridge-" + journal.NewAttemptID()[:16]
	name := r.req.ring() + "/importJobs/" + id
	var job *kmspb.ImportJob
	err := r.journaled(journalOpJob, map[string]string{"KeyRing": r.req.ring(), "CryptoKey": r.req.key(), "ImportJob": name, "ImportMethod": r.wrap.Name},
		map[string]string{"ImportJob": name}, func() (map[string]string, error) {
			j, err := r.im.KMS.CreateImportJob(ctx, &kmspb.CreateImportJobRequest{Parent: r.req.ring(), ImportJobId: id,
				ImportJob: &kmspb.ImportJob{ImportMethod: methodPB, ProtectionLevel: r.req.protection()}})
			if isCode(err, codes.AlreadyExists) {
				// The id is this attempt's own: the client retried our call.
				j, err = r.im.KMS.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: name})
			}
			job = j
			return map[string]string{"ImportJob": name}, err
		})
	if err != nil {
		return "", explain("CreateImportJob", err)
	}
	r.job = job
	r.res.ImportJob, r.res.ImportJobCreated = name, true
	r.changed = append(r.changed, "import job "+name+" (expires by itself in 3 days)")
	return fmt.Sprintf("created import job %s (%s, %s)", name, r.wrap.Name, r.req.ProtectionLevel), nil
}

func (r *run) waitJob(ctx context.Context) (string, error) {
	if r.version != nil {
		return kmsimport.NotNeeded, nil
	}
	deadline := r.im.now().Add(r.im.Wait)
	for r.job.State == kmspb.ImportJob_PENDING_GENERATION {
		if r.im.now().After(deadline) {
			return "", fmt.Errorf("%w: import job %s is still PENDING_GENERATION after %s: re-run the same command later", kmsimport.ErrInterrupted, r.job.Name, r.im.Wait)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(r.im.Poll):
		}
		j, err := r.im.KMS.GetImportJob(ctx, &kmspb.GetImportJobRequest{Name: r.job.Name})
		if err != nil {
			return "", explain("GetImportJob", err)
		}
		r.job = j
	}
	if r.job.State != kmspb.ImportJob_ACTIVE {
		return "", fmt.Errorf("%w: import job %s is %s, not ACTIVE: nothing was wrapped; re-run the same command to create a new job", kmsimport.ErrInvalidInput, r.job.Name, r.job.State)
	}
	return fmt.Sprintf("import job %s is ACTIVE until %s", r.job.Name, r.job.GetExpireTime().AsTime().UTC().Format(time.RFC3339)), nil
}

// attest checks the job's wrapping key before anything is wrapped under
// it: an RSA key of the method's size, attested by Google's HSM unless
// the job is SOFTWARE or the check was skipped on purpose.
func (r *run) attest(context.Context) (string, error) {
	if r.version != nil {
		return kmsimport.NotNeeded, nil
	}
	blk, rest := pem.Decode([]byte(r.job.GetPublicKey().GetPem()))
	if blk == nil || blk.Type != "PUBLIC KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		return "", fmt.Errorf("%w: import job %s has no PEM public key: nothing was wrapped", kmsimport.ErrVerification, r.job.Name)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	pub, ok := k.(*rsa.PublicKey)
	if err != nil || !ok || pub.N.BitLen() != r.wrap.RSABits {
		return "", fmt.Errorf("%w: import job %s's public key is not the RSA-%d key %s uses: nothing was wrapped", kmsimport.ErrVerification, r.job.Name, r.wrap.RSABits, r.wrap.Name)
	}
	r.pub = pub
	sum := sha256.Sum256(blk.Bytes)
	r.res.WrappingPublicKeySHA256 = hex.EncodeToString(sum[:])
	switch {
	case r.job.ProtectionLevel == kmspb.ProtectionLevel_SOFTWARE:
		r.res.Attestation.Status = "none: SOFTWARE protection level, the wrapping key is not in an HSM and nothing attests it"
		r.res.Warnings = append(r.res.Warnings, "SOFTWARE import job: Cloud KMS offers no attestation of its wrapping key")
		return r.res.Attestation.Status, nil
	case r.req.SkipAttestation:
		r.res.Attestation.Status = "skipped: --gcp-skip-attestation was given, the wrapping key was not proven to be in Google's HSM"
		r.res.Warnings = append(r.res.Warnings, "the import job's attestation was not checked (--gcp-skip-attestation)")
		return r.res.Attestation.Status, nil
	}
	a := r.job.GetAttestation()
	if a == nil {
		return "", fmt.Errorf("%w: HSM import job %s carries no attestation, so its wrapping key cannot be shown to be in Google's HSM: nothing was wrapped", kmsimport.ErrVerification, r.job.Name)
	}
	at := r.im.now()
	if r.job.GetGenerateTime() != nil {
		at = r.job.GetGenerateTime().AsTime()
	}
	st := attest.Statement{Format: attest.Format(a.Format), Content: a.Content, CaviumCerts: a.GetCertChains().GetCaviumCerts(),
		GoogleCardCerts: a.GetCertChains().GetGoogleCardCerts(), GooglePartCerts: a.GetCertChains().GetGooglePartitionCerts()}
	res, err := attest.Verify(st, r.roots, pub, at)
	if err != nil {
		return "", fmt.Errorf("%w: import job %s: %v; nothing was wrapped", kmsimport.ErrVerification, r.job.Name, err)
	}
	r.res.Attestation = Attestation{Verified: true, Status: "verified", HSM: res.HSM, PublicKeySHA256: res.PublicKeySHA256,
		ManufacturerRootSHA256: res.ManufacturerRootSHA256, OwnerRootSHA256: res.OwnerRootSHA256, PartitionCertSHA256: res.PartitionCertSHA256,
		Attributes: res.Attributes, Notes: res.Notes}
	return fmt.Sprintf("attestation verified: wrapping key SHA-256 %s is a non-extractable key generated in HSM %s, certified by the manufacturer root %s and Google's root %s",
		r.res.WrappingPublicKeySHA256, res.HSM, res.ManufacturerRootSHA256[:16], res.OwnerRootSHA256[:16]), nil
}

func (r *run) wrapKey(context.Context) (string, error) {
	if r.version != nil {
		return kmsimport.NotNeeded, nil
	}
	wrapped, sum, err := kmsimport.WrapInToken(r.im.Token, r.key, r.pub, r.wrap.Method)
	if err != nil {
		return "", err
	}
	r.wrapped = wrapped
	r.res.WrappedKeySHA256 = sum
	return fmt.Sprintf("wrapped HSM key %q inside the token with %s: %d bytes, SHA-256 %s", r.key.Label, r.wrap.Name, len(wrapped), r.res.WrappedKeySHA256), nil
}

func (r *run) importVersion(ctx context.Context) (string, error) {
	if r.version != nil {
		return kmsimport.NotNeeded, nil
	}
	req := &kmspb.ImportCryptoKeyVersionRequest{Parent: r.req.key(), Algorithm: r.alg.PB, ImportJob: r.job.Name, WrappedKey: r.wrapped}
	find := map[string]string{"ImportJob": r.job.Name}
	if r.req.ReimportVersion != "" {
		req.CryptoKeyVersion = r.req.key() + "/cryptoKeyVersions/" + r.req.ReimportVersion
		find["CryptoKeyVersion"] = req.CryptoKeyVersion
	}
	var v *kmspb.CryptoKeyVersion
	err := r.journaled(journalOpImport, map[string]string{"CryptoKey": r.req.key(), "HsmKeyId": r.res.HSM.KeyID, "TokenSerial": r.res.HSM.Token.Serial,
		"ImportJob": r.job.Name, "WrappedKeySha256": r.res.WrappedKeySHA256}, find, func() (map[string]string, error) {
		var err error
		v, err = r.im.KMS.ImportCryptoKeyVersion(ctx, req)
		if err != nil {
			return nil, err
		}
		return map[string]string{"CryptoKeyVersion": v.Name}, nil
	})
	if err != nil {
		if lost(err) {
			r.changed = append(r.changed, "perhaps a crypto key version imported from job "+r.job.Name+" (the answer was lost)")
		}
		return "", explain("ImportCryptoKeyVersion", err)
	}
	r.version = v
	r.res.CryptoKeyVersion = v.Name
	r.res.Reimported = r.req.ReimportVersion != ""
	r.changed = append(r.changed, "crypto key version "+v.Name+" ("+v.State.String()+")")
	return fmt.Sprintf("Cloud KMS took the wrapped material into %s (%s)", v.Name, v.State), nil
}

func (r *run) waitVersion(ctx context.Context) (string, error) {
	deadline := r.im.now().Add(r.im.Wait)
	v := r.version
	for v.State == kmspb.CryptoKeyVersion_PENDING_IMPORT {
		if r.im.now().After(deadline) {
			return "", fmt.Errorf("%w: version %s is still PENDING_IMPORT after %s: re-run the same command later", kmsimport.ErrInterrupted, v.Name, r.im.Wait)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(r.im.Poll):
		}
		var err error
		if v, err = r.im.KMS.GetCryptoKeyVersion(ctx, &kmspb.GetCryptoKeyVersionRequest{Name: v.Name}); err != nil {
			return "", explain("GetCryptoKeyVersion", err)
		}
	}
	r.version = v
	r.res.CryptoKeyVersion, r.res.VersionState = v.Name, v.State.String()
	if v.State != kmspb.CryptoKeyVersion_ENABLED {
		return "", &kmsimport.KMSError{Op: "ImportCryptoKeyVersion", Code: v.State.String(), Message: serverText(v.ImportFailureReason),
			Advice: fmt.Sprintf("Cloud KMS discarded the material; the HSM key is unchanged: re-import into this version with --crypto-key-version %s", v.Name[strings.LastIndex(v.Name, "/")+1:])}
	}
	return fmt.Sprintf("version %s is ENABLED", v.Name), nil
}
