package kmsemu

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
)

// Options configures a Server. Every field is optional.
type Options struct {
	// Region is the default Region: the one of requests without a SigV4
	// credential scope. Every other request is served in the Region of its
	// signature's credential scope, each Region with its own keys, aliases
	// and import parameters (see regions.go). Default "us-east-1".
	Region string
	// AccountID appears in every ARN and in KeyMetadata.AWSAccountId, and is
	// the only account whose ARNs the server accepts. Default "111122223333".
	AccountID string
	// ImportParametersTTL is how long a GetParametersForImport public key and
	// import token stay valid (ParametersValidTo). Default 24h, as in KMS.
	ImportParametersTTL time.Duration
	// ArtifactsDir, when set, makes every ImportKeyMaterial call, whatever its
	// outcome, write import-NNN.json there (created 0700 if missing; files are
	// 0600 and never overwritten) with the fields KeyId (the key ARN if the key
	// was found, else the KeyId as sent), WrappingAlgorithm, WrappingKeySpec,
	// EncryptedKeyMaterial (base64), WrappingPrivateKeyPEM (PKCS#8 PEM of the
	// wrapping private key of the call that issued the import token) and
	// Outcome ("ok" or the exception name). Fields the call did not reach are
	// empty. If the file cannot be written the call fails with
	// KMSInternalException and changes nothing.
	ArtifactsDir string
	// Now is the server's time source; KmsBridgeAdvanceClock adds an offset
	// to it. Default time.Now.
	Now func() time.Time
	// LenientPKCS8Padding makes ImportKeyMaterial accept RSA and EC key
	// material whose PKCS#8 DER is followed by 1 to 7 zero bytes, ignoring
	// them, and log a warning each time it does. It exists only because
	// SoftHSM2 2.6.1 zero-pads a private key's PKCS#8 to a multiple of 8
	// bytes before its RFC 5649 wrap and counts the padding in the RFC 5649
	// length, so what unwraps is DER plus padding. Whether real KMS accepts
	// such material is not known: keep it off (the default) unless a test
	// needs SoftHSM2 2.6.1's output, and do not take its success as proof
	// that KMS would import the same blob. Off, any byte after the DER is
	// IncorrectKeyMaterialException.
	LenientPKCS8Padding bool
	// TestOperations enables the emulator-only operations (KmsBridge*:
	// key check value, clock, fault injection). Off, they answer
	// UnknownOperationException like any name KMS does not know, so a
	// rehearsal cannot use them by mistake. Tests turn it on.
	TestOperations bool
	// RotationDelay is how long after RotateKeyOnDemand the rotation
	// completes, on the emulator's clock (KmsBridgeAdvanceClock moves it).
	// KMS rotates asynchronously too. Default 2s.
	RotationDelay time.Duration
	// ReplicaCreating is how long a new replica key is Creating before it
	// is PendingImport (EXTERNAL) or Enabled, on the emulator's clock; KMS
	// creates replicas asynchronously too. 0 is the default, 1s; negative
	// makes replicas at once.
	ReplicaCreating time.Duration
	// FreshKeyUnknownFor makes a key just created (CreateKey) or replicated
	// (ReplicateKey, in the replica's Region) unknown for this long on the
	// emulator's clock: requests naming it answer NotFoundException and
	// ListKeys leaves it out, as KMS's eventual consistency allows. Default
	// 0: every change is visible to the next request.
	FreshKeyUnknownFor time.Duration
	// Latency delays every KMS request (not the emulator-only ones) by this
	// much real time before it is handled, plus a uniformly random share of
	// LatencyJitter, so rehearsals and benchmarks see a network-like round
	// trip. Default none.
	Latency       time.Duration
	LatencyJitter time.Duration
	// Quotas are request quotas: above them a request is ThrottlingException
	// and does nothing (see Quota, AWSDefaultQuotas). Default none.
	Quotas []Quota
	// WrappingKeyPool is how many wrapping key pairs of each
	// WrappingKeySpec ("RSA_2048", "RSA_3072", "RSA_4096") New generates
	// ahead, one generator per CPU, and keeps ready, refilling in the
	// background only while no request has come for a quarter of a second;
	// see Server.WaitPool. Specs not named keep the default, small, pool
	// that starts on first use and refills at once.
	WrappingKeyPool map[string]int
	// NoPoolRefill stops every background key generation: the pools of
	// WrappingKeyPool are filled once, before serving, and never refilled,
	// and specs not named get no pool at all (each GetParametersForImport
	// generates its key pair while the caller waits). For measurements,
	// where the emulator must do no work of its own between requests.
	NoPoolRefill bool
	// TestKeys, for tests and rehearsals only, takes the wrapping key pairs
	// from a test key cache (see package internal/emukeys): each pair is
	// still handed out at most once per Server until the Region it went to
	// is reset (KmsBridgeResetRegion), but may have been generated by an
	// earlier emulator run. Nil (the default) generates a fresh pair
	// for every GetParametersForImport, as KMS does.
	TestKeys *emukeys.Source
	// Logger receives one line per request (operation, key id, outcome).
	// Key material, plaintexts and import tokens are never logged.
	// Default slog.Default().
	Logger *slog.Logger
}

// Server is an in-memory AWS KMS emulator. It is safe for concurrent use. All
// state lives in memory and disappears with the Server.
type Server struct {
	defRegion string
	accountID string
	ttl       time.Duration
	artifacts string
	lenient   bool
	testOps   bool
	// rotationDelay is Options.RotationDelay.
	rotationDelay time.Duration
	// replicaCreating and freshUnknown are Options.ReplicaCreating and
	// FreshKeyUnknownFor.
	replicaCreating time.Duration
	freshUnknown    time.Duration
	latency         time.Duration
	jitter          time.Duration
	quotas          *quotas
	log             *slog.Logger
	faults          faults
	// done is closed by Close, ending injected hangs.
	done      chan struct{}
	closeOnce sync.Once
	pool      *keyPool
	// materialSecret keys the HMAC that derives KeyMaterialId, so ids are
	// stable for one Server and unpredictable across Servers, like in KMS.
	materialSecret []byte

	mu          sync.Mutex
	clock       clock
	regions     map[string]*regionState
	artifactSeq int
}

// New returns a Server ready to serve. It starts no goroutine until a
// wrapping key size is first requested; call Close to stop them.
func New(o Options) *Server {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "111122223333"
	}
	if o.ImportParametersTTL <= 0 {
		o.ImportParametersTTL = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RotationDelay <= 0 {
		o.RotationDelay = defaultRotationDelay
	}
	switch {
	case o.ReplicaCreating == 0:
		o.ReplicaCreating = defaultReplicaCreating
	case o.ReplicaCreating < 0:
		o.ReplicaCreating = 0
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		panic("kmsemu: crypto/rand failed: " + err.Error())
	}
	return &Server{
		defRegion:       o.Region,
		accountID:       o.AccountID,
		ttl:             o.ImportParametersTTL,
		artifacts:       o.ArtifactsDir,
		lenient:         o.LenientPKCS8Padding,
		testOps:         o.TestOperations,
		rotationDelay:   o.RotationDelay,
		replicaCreating: o.ReplicaCreating,
		freshUnknown:    o.FreshKeyUnknownFor,
		latency:         o.Latency,
		jitter:          o.LatencyJitter,
		quotas:          newQuotas(o.Quotas),
		done:            make(chan struct{}),
		log:             o.Logger,
		pool:            newKeyPool(o.WrappingKeyPool, !o.NoPoolRefill, o.TestKeys),
		materialSecret:  secret,
		clock:           clock{base: o.Now},
		regions:         map[string]*regionState{},
	}
}

// Close stops the background goroutines that refill the wrapping-key pool and
// waits for them. The Server keeps answering requests after Close, generating
// wrapping keys on demand.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
	s.pool.close()
}

// WaitPool blocks until the wrapping-key pools sized by
// Options.WrappingKeyPool are full, or ctx ends, so that a benchmark does
// not measure their filling.
func (s *Server) WaitPool(ctx context.Context) error { return s.pool.wait(ctx) }

// PoolReady reports how many wrapping key pairs of each spec are ready.
func (s *Server) PoolReady() map[string]int { return s.pool.ready() }

const (
	targetPrefix   = "TrentService."
	jsonContent    = "application/x-amz-json-1.1"
	maxRequestBody = 1 << 20
)

// call carries what one request's log line reports.
type call struct {
	op string
	// regionName is the Region the request was signed for ("" if none);
	// reg is its state, set when the handler runs.
	regionName string
	reg        *regionState
	keyID      string // resolved key UUID, or the id as sent until it is resolved
}

type handler func(s *Server, c *call, body []byte) (any, *apiError)

// operations maps each emulated X-Amz-Target operation to its handler. The
// handlers run with s.mu held, after expired material and completed deletions
// have been applied.
var operations = map[string]handler{
	"CreateKey":           (*Server).createKey,
	"DescribeKey":         (*Server).describeKey,
	"ListKeys":            (*Server).listKeys,
	"EnableKey":           (*Server).enableKey,
	"DisableKey":          (*Server).disableKey,
	"ScheduleKeyDeletion": (*Server).scheduleKeyDeletion,
	"CancelKeyDeletion":   (*Server).cancelKeyDeletion,
	"CreateAlias":         (*Server).createAlias,
	"ListAliases":         (*Server).listAliases,
	"UpdateAlias":         (*Server).updateAlias,
	"DeleteAlias":         (*Server).deleteAlias,
	"TagResource":         (*Server).tagResource,
	"UntagResource":       (*Server).untagResource,
	"ListResourceTags":    (*Server).listResourceTags,
	// The Resource Groups Tagging API's search, served at the same
	// endpoint (X-Amz-Target ResourceGroupsTaggingAPI_20170126.GetResources).
	"tagging:GetResources":      (*Server).getResources,
	"GetParametersForImport":    (*Server).getParametersForImport,
	"ImportKeyMaterial":         (*Server).importKeyMaterial,
	"DeleteImportedKeyMaterial": (*Server).deleteImportedKeyMaterial,
	"Encrypt":                   (*Server).encrypt,
	"Decrypt":                   (*Server).decrypt,
	"GenerateMac":               (*Server).generateMac,
	"VerifyMac":                 (*Server).verifyMac,
	"GetPublicKey":              (*Server).getPublicKey,
	"DeriveSharedSecret":        (*Server).deriveSharedSecret,
	"RotateKeyOnDemand":         (*Server).rotateKeyOnDemand,
	"ListKeyRotations":          (*Server).listKeyRotations,
	"GetKeyRotationStatus":      (*Server).getKeyRotationStatus,
	"ReplicateKey":              (*Server).replicateKey,
	"UpdatePrimaryRegion":       (*Server).updatePrimaryRegion,
	"Sign":                      (*Server).sign,
	"Verify":                    (*Server).verify,
	"KmsBridgeGetKeyCheckValue": (*Server).getKeyCheckValue,
	"KmsBridgeAdvanceClock":     (*Server).advanceClock,
	"KmsBridgeSetConsistency":   (*Server).setConsistency,
	"KmsBridgeInjectFault":      (*Server).injectFault,
	"KmsBridgeListFaults":       (*Server).listFaults,
	"KmsBridgeClearFaults":      (*Server).clearFaults,
	"KmsBridgeResetRegion":      (*Server).resetRegion,
}

// kmsOperations lists the operations of the real KMS API (aws-sdk-go-v2
// service/kms v1.62.4), so that a KMS operation the emulator lacks is told
// apart from a name KMS itself does not know.
var kmsOperations = strings.Fields(`CancelKeyDeletion ConnectCustomKeyStore
	CreateAlias CreateCustomKeyStore CreateGrant CreateKey Decapsulate Decrypt
	DeleteAlias DeleteCustomKeyStore DeleteImportedKeyMaterial DeriveSharedSecret
	DescribeCustomKeyStores DescribeKey DisableKey DisableKeyRotation
	DisconnectCustomKeyStore EnableKey EnableKeyRotation Encapsulate Encrypt
	GenerateDataKey GenerateDataKeyPair GenerateDataKeyPairWithoutPlaintext
	GenerateDataKeyWithoutPlaintext GenerateMac GenerateRandom GetKeyLastUsage
	GetKeyPolicy GetKeyRotationStatus GetParametersForImport GetPublicKey
	ImportKeyMaterial ListAliases ListGrants ListKeyPolicies ListKeyRotations
	ListKeys ListResourceTags ListRetirableGrants PutKeyPolicy ReEncrypt
	ReplicateKey RetireGrant RevokeGrant RotateKeyOnDemand ScheduleKeyDeletion
	Sign TagResource UntagResource UpdateAlias UpdateCustomKeyStore
	UpdateKeyDescription UpdatePrimaryRegion Verify VerifyMac`)

func isKMSOperation(op string) bool {
	for _, k := range kmsOperations {
		if k == op {
			return true
		}
	}
	return false
}

// ServeHTTP answers one awsJson1.1 request. Successful calls answer 200 with
// a JSON body; failures answer 400 (500 for KMSInternalException) with
// X-Amzn-ErrorType and a {"__type","message"} body, as KMS does. A fault
// injected with KmsBridgeInjectFault may replace the answer (see doc.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	s.pool.touch()
	if s.serveCBOR(w, r) || s.serveSTS(w, r) {
		return
	}
	target := r.Header.Get("X-Amz-Target")
	op, _ := strings.CutPrefix(target, targetPrefix)
	if t, ok := strings.CutPrefix(target, taggingTargetPrefix); ok {
		op = "tagging:" + t
	}
	c := &call{op: op, regionName: requestRegion(r)}
	if op == "" {
		c.op = "-"
	}

	var resp any
	body, aerr := s.checkRequest(r, target, op)
	var f *fault
	var callNo int
	if aerr == nil && faultable(op) {
		if !s.delay(r.Context()) {
			s.logRequest(c, start, "client went away during the latency", nil)
			return
		}
		f, callNo = s.faults.take(op, cmp.Or(c.regionName, s.defRegion))
	}
	lost := false
	if f != nil {
		s.log.Warn("injected fault fires", "faultId", f.id, "op", op, "fault", f.kind, "call", callNo)
		switch f.kind {
		case faultInternalError:
			aerr = errorf("KMSInternalException", "kms-emulator: injected fault %d (InternalError) on call %d of %s", f.id, callNo, op)
		case faultThrottling:
			aerr = errorf("ThrottlingException", "kms-emulator: injected fault %d (Throttling) on call %d of %s: Rate exceeded", f.id, callNo, op)
		case faultReset:
			s.faults.record(f, callNo, false, "connection reset")
			s.logRequest(c, start, "connection reset (injected)", nil)
			abortConnection(w)
			return
		case faultHang:
			if !s.hang(r.Context(), f.hang) {
				s.faults.record(f, callNo, false, "client went away")
				s.logRequest(c, start, "client went away during injected hang", nil)
				return
			}
		case faultLostResponse:
			lost = true
		}
	}
	if aerr == nil && faultable(op) {
		if ok, rps := s.quotas.allow(op, cmp.Or(c.regionName, s.defRegion)); !ok {
			aerr = errorf("ThrottlingException", "Rate exceeded: kms-emulator's quota for %s is %g requests per second", op, rps)
		}
	}
	if aerr == nil {
		resp, aerr = s.dispatch(c, op, body)
	}
	if f != nil {
		switch f.kind {
		case faultInternalError, faultThrottling:
			s.faults.record(f, callNo, false, aerr.code)
		default:
			outcome := "ok"
			if aerr != nil {
				outcome = aerr.code
			}
			s.faults.record(f, callNo, aerr == nil, outcome)
		}
	}
	if lost {
		outcome := "ok"
		if aerr != nil {
			outcome = aerr.code
		}
		s.logRequest(c, start, outcome+", response lost (injected)", nil)
		abortConnection(w)
		return
	}

	w.Header().Set("Content-Type", jsonContent)
	w.Header().Set("X-Amzn-RequestId", newUUID())
	outcome := "ok"
	if aerr != nil {
		outcome = aerr.code
		w.Header().Set("X-Amzn-ErrorType", aerr.code)
		w.WriteHeader(aerr.httpStatus())
		_ = json.NewEncoder(w).Encode(errorBody{Type: aerr.code, Message: aerr.msg})
	} else {
		body, err := json.Marshal(resp)
		if err != nil {
			// Every response type is a plain struct; this cannot happen.
			panic("kmsemu: marshal response: " + err.Error())
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
	s.logRequest(c, start, outcome, aerr)
}

// logRequest writes the one log line of a request.
func (s *Server) logRequest(c *call, start time.Time, outcome string, aerr *apiError) {
	keyID := c.keyID
	if keyID == "" {
		keyID = "-"
	}
	attrs := []any{"op", c.op, "key", keyID, "outcome", outcome, "duration", time.Since(start).Round(time.Microsecond)}
	if aerr != nil {
		s.log.Warn("kms request", append(attrs, "message", aerr.msg)...)
	} else {
		s.log.Info("kms request", attrs...)
	}
}

// checkRequest checks the method and target and reads the body, before any
// fault or handler sees the request.
func (s *Server) checkRequest(r *http.Request, target, op string) ([]byte, *apiError) {
	if r.Method != http.MethodPost {
		return nil, &apiError{code: "UnknownOperationException", msg: "the KMS JSON API is served by POST / only", status: http.StatusMethodNotAllowed}
	}
	_, ok := operations[op]
	if strings.HasPrefix(target, taggingTargetPrefix) {
		if !ok {
			return nil, errorf("UnknownOperationException", "unknown X-Amz-Target %q: kms-emulator serves only %sGetResources of that API", target, taggingTargetPrefix)
		}
	} else if !strings.HasPrefix(target, targetPrefix) || strings.HasPrefix(op, "tagging:") {
		return nil, errorf("UnknownOperationException", "unknown X-Amz-Target %q: expected TrentService.<Operation>", target)
	}
	if !ok {
		if isKMSOperation(op) {
			return nil, notImplemented("kms-emulator does not emulate the KMS operation %s", op)
		}
		return nil, errorf("UnknownOperationException", "unknown X-Amz-Target %q: expected TrentService.<Operation>", target)
	}
	if isTestOperation(op) && !s.testOps {
		return nil, errorf("UnknownOperationException", "unknown X-Amz-Target %q (kms-emulator's test operations are off: start it with --test-operations)", target)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return nil, errorf("SerializationException", "cannot read the request body: %v", err)
	}
	if len(body) > maxRequestBody {
		return nil, errorf("SerializationException", "request body larger than %d bytes", maxRequestBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	return body, nil
}

// dispatch runs op's handler with s.mu held, after applying the clock.
func (s *Server) dispatch(c *call, op string, body []byte) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.reg = s.region(c.regionName)
	s.applyClock()
	return operations[op](s, c, body)
}

// apiError is a KMS exception as it goes on the wire.
type apiError struct {
	code   string
	msg    string
	status int // 0 means 400, or 500 for KMSInternalException
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func (e *apiError) httpStatus() int {
	switch {
	case e.status != 0:
		return e.status
	case e.code == "KMSInternalException":
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

// codeNotImplemented is the emulator's own error code for a KMS operation,
// parameter or key spec it does not emulate: never a real KMS code, whose
// meaning a client would act on.
const codeNotImplemented = "KmsBridgeNotImplementedException"

// notImplemented is a codeNotImplemented error, HTTP 501 (which the SDKs
// do not retry).
func notImplemented(format string, args ...any) *apiError {
	return &apiError{code: codeNotImplemented, msg: fmt.Sprintf(format, args...), status: http.StatusNotImplemented}
}

func errorf(code, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

// decode parses a request body into in. Syntax errors and values of the wrong
// JSON type are SerializationException, as in KMS. Member names are matched
// exactly, case included (encoding/json alone would take "keyid" for
// KeyId); members the emulator does not know, misspelt ones included, are
// ignored (see doc.go).
func decode(body []byte, in any) *apiError {
	exact, err := exactMembers(body, reflect.TypeOf(in))
	if err == nil {
		body = exact
	}
	if err := json.Unmarshal(body, in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errorf("SerializationException", "cannot parse member %s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return errorf("SerializationException", "cannot parse the request body as JSON: %v", err)
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// exactMembers drops from raw every object member whose name is not exactly
// the name of a field of t, through nested structs, slices and maps. Values
// it cannot take apart are left for json.Unmarshal to judge.
func exactMembers(raw []byte, t reflect.Type) ([]byte, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return raw, nil
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return raw, err
		}
		for name, v := range m {
			f, ok := fieldNamed(t, name)
			if !ok {
				delete(m, name)
				continue
			}
			if nv, err := exactMembers(v, f.Type); err == nil {
				m[name] = nv
			}
		}
		return json.Marshal(m)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return raw, nil // a blob: a base64 string
		}
		var a []json.RawMessage
		if err := json.Unmarshal(raw, &a); err != nil || a == nil {
			return raw, err
		}
		for i, v := range a {
			if nv, err := exactMembers(v, t.Elem()); err == nil {
				a[i] = nv
			}
		}
		return json.Marshal(a)
	case reflect.Map:
		if k := t.Elem().Kind(); k != reflect.Struct && k != reflect.Pointer {
			return raw, nil
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return raw, err
		}
		for name, v := range m {
			if nv, err := exactMembers(v, t.Elem()); err == nil {
				m[name] = nv
			}
		}
		return json.Marshal(m)
	}
	return raw, nil
}

// fieldNamed finds the exported field of struct t whose JSON name is
// exactly name.
func fieldNamed(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		jn := f.Name
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" {
			jn = tag
		}
		if jn == name && jn != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// newUUID returns a random RFC 4122 version 4 UUID in its canonical form.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("kmsemu: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
