// Package localkms runs nsmithuk/local-kms (an AWS KMS emulator) in-process
// for tests.
//
// # Why the harness has its own dispatcher
//
// local-kms only exports its building blocks. Its HTTP entry point,
// src.handleRequest, is unexported, and the only exported way to serve it,
// src.Run, registers on http.DefaultServeMux and calls
// http.ListenAndServe(":"+port), which listens on all interfaces and never
// returns. This harness therefore imports the exported packages
//
//   - github.com/nsmithuk/local-kms/src/config  (package-level region/account)
//   - github.com/nsmithuk/local-kms/src/data    (data.NewDatabase: LevelDB store)
//   - github.com/nsmithuk/local-kms/src/handler (handler.NewRequestHandler: one
//     exported method per KMS operation, each returning handler.Response)
//
// and does the same small amount of routing that src.handleRequest does:
// POST / with a JSON content type, operation taken from the
// "X-Amz-Target: TrentService.<Operation>" header and looked up by name on
// *handler.RequestHandler. Every KMS operation implementation (validation,
// crypto, persistence) is local-kms's own code; nothing is copied.
//
// Differences from the local-kms binary, all deliberate:
//
//   - It listens on 127.0.0.1 only (httptest.NewServer).
//   - Requests are serialised by a mutex. local-kms does load-modify-save on
//     LevelDB without locking, so concurrent requests against one key could
//     lose updates; real KMS does not behave like that.
//   - A panic inside local-kms (e.g. ImportKeyMaterial without
//     ExpirationModel dereferences a nil pointer) fails the test via
//     t.Errorf and is answered with a non-retryable 400
//     KMSInternalException, instead of net/http dropping the connection and
//     the AWS SDK retrying an EOF.
//   - No seed file is loaded: the seeding code (src.seed) is unexported, and
//     every Start begins with an empty database.
//   - Log output goes to the test's output instead of stderr.
package localkms

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
	"github.com/nsmithuk/local-kms/src/handler"
	"github.com/sirupsen/logrus"
)

// Region and AccountID are the values local-kms puts in every ARN it
// returns (arn:aws:kms:<Region>:<AccountID>:key/<uuid>). They are local-kms's
// own defaults. local-kms does not check request signatures or the region a
// client signs for, but clients that compare ARNs against their configured
// region should use Region.
const (
	Region    = "eu-west-2"
	AccountID = "111122223333"
)

var configOnce sync.Once

// configure sets local-kms's package-level configuration.
//
// local-kms keeps region and account id in the package variables
// config.AWSRegion and config.AWSAccountId (its main package copies them from
// the KMS_REGION / KMS_ACCOUNT_ID environment variables at start-up; the
// library packages never read the environment). They are process-global and
// read without synchronisation by every request handler, so they are written
// exactly once, before the first server starts, and always with the same
// constant values: servers started by parallel tests therefore never observe
// a write. config.DatabasePath is deliberately left alone: it is only read
// by src.Run, and each server is given its own path via data.NewDatabase.
func configure() {
	configOnce.Do(func() {
		config.AWSRegion = Region
		config.AWSAccountId = AccountID
	})
}

// Start runs a fresh local-kms on 127.0.0.1 and returns its endpoint URL
// (e.g. "http://127.0.0.1:40123"), suitable for the aws-sdk-go-v2 KMS
// client's BaseEndpoint option. Its LevelDB database lives in t.TempDir().
// The server and the database are closed in t.Cleanup; the directory is then
// removed by the testing package.
func Start(t testing.TB) (endpoint string) {
	t.Helper()
	return start(t, func(target string, recovered any) {
		t.Errorf("localkms: local-kms panicked while handling %s: %v", target, recovered)
	})
}

// start is Start with a configurable panic hook, so that this package's own
// tests can document panicking inputs without failing.
func start(t testing.TB, onPanic func(target string, recovered any)) string {
	t.Helper()
	configure()

	// t.TempDir registers its removal first, so it runs after the cleanup
	// below has closed the server and the database (cleanups run LIFO).
	dbPath := filepath.Join(t.TempDir(), "local-kms")
	db, err := openDatabase(dbPath)
	if err != nil {
		t.Fatalf("localkms: opening database in %s: %v", dbPath, err)
	}

	logger := logrus.New()
	logger.SetOutput(t.Output())
	logger.SetFormatter(&logrus.TextFormatter{DisableColors: true, DisableTimestamp: true})
	logger.SetLevel(logrus.InfoLevel)

	s := &server{db: db, logger: logger, onPanic: onPanic}
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		// Close blocks until in-flight requests have finished, so the
		// database is never closed underneath a handler, and no handler logs
		// to t after the test has completed.
		srv.Close()
		db.Close()
	})
	return srv.URL
}

// openDatabase wraps data.NewDatabase, which panics on error.
func openDatabase(path string) (db *data.Database, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return data.NewDatabase(path), nil
}

var responseType = reflect.TypeFor[handler.Response]()

type server struct {
	mu      sync.Mutex
	db      *data.Database
	logger  *logrus.Logger
	onPanic func(target string, recovered any)
}

// ServeHTTP mirrors the checks of local-kms's unexported src.handleRequest.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != "/":
		http.Error(w, "Page not found", http.StatusNotFound)
		return
	case r.Method != http.MethodPost:
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	case !strings.Contains(r.Header.Get("Content-Type"), "json"):
		// local-kms accepts application/x-amz-json-1.1 and application/json.
		http.Error(w, "Only JSON based content types accepted", http.StatusUnsupportedMediaType)
		return
	}

	target := r.Header.Get("X-Amz-Target")
	op, ok := strings.CutPrefix(target, "TrentService.")
	if !ok {
		// local-kms ignores the prefix; requiring it costs nothing with a
		// real KMS client and catches protocol mix-ups.
		notImplemented(w, target)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	h := handler.NewRequestHandler(r, s.logger, s.db)
	m := reflect.ValueOf(h).MethodByName(op)
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 || m.Type().Out(0) != responseType {
		notImplemented(w, target)
		return
	}

	resp, panicked := call(m)
	if panicked != nil {
		s.onPanic(target, panicked)
		// Status 400 so that the AWS SDK does not retry (it retries 500s).
		resp = handler.New400ExceptionResponse("KMSInternalException",
			fmt.Sprintf("local-kms panicked while handling %s: %v", target, panicked))
	}

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(resp.Code)
	fmt.Fprint(w, resp.Body)
}

func call(m reflect.Value) (resp handler.Response, panicked any) {
	defer func() { panicked = recover() }()
	return m.Call(nil)[0].Interface().(handler.Response), nil
}

// notImplemented answers like local-kms does for unknown operations: 501
// with a plain-text body (the AWS SDK reports it as an unknown error).
func notImplemented(w http.ResponseWriter, target string) {
	w.WriteHeader(http.StatusNotImplemented)
	fmt.Fprintf(w, "Passed X-Amz-Target (%s) is not implemented", target)
}
