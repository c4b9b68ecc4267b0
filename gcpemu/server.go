// Package gcpemu is a local Google Cloud KMS emulator for kmsbridge's
// tests: the gRPC KeyManagementService that Google's Go client
// (cloud.google.com/go/kms/apiv1) speaks, limited to what key import
// needs: key rings, import-only CryptoKeys, ImportJobs with an attestation
// signed by test roots it generates, ImportCryptoKeyVersion, version
// states, destroy and re-import, Encrypt/Decrypt, GetPublicKey, MacSign
// and AsymmetricSign. All state is in memory. docs/gcp-import.md lists the
// source of each rule it enforces.
package gcpemu

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	locationpb "google.golang.org/genproto/googleapis/cloud/location"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest/attesttest"
)

// Options configure a Server; zero values are Cloud KMS's defaults.
type Options struct {
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// ImportJobTTL is how long an ImportJob lives; 0 is Cloud KMS's 3 days.
	ImportJobTTL time.Duration
	// ImportDelay is how long a version stays PENDING_IMPORT.
	ImportDelay time.Duration
	// DestroyDelay, when set, replaces every key's destroy_scheduled_duration
	// (Cloud KMS's minimum is a day; tests need seconds).
	DestroyDelay time.Duration
	// Faults are failures to inject, in order of use; see Fault.
	Faults []Fault
	// Authority signs attestations; nil makes one whose keys come from
	// TestKeys (fresh ones without a test key cache). With a cache, every
	// emulator over it has the same trust roots: a test that needs
	// another authority's roots starts that emulator without one.
	Authority *attesttest.Authority
	// Projects, when set, are the only projects that exist for the
	// caller; any other answers PERMISSION_DENIED, as Google's APIs do for
	// a project that does not exist or is not the caller's.
	Projects []string
	// LenientPKCS8 accepts zero bytes after a PKCS#8 structure, as
	// SoftHSM2 2.6 wraps it (whether Cloud KMS does is not known).
	LenientPKCS8 bool
	// Tamper spoils every HSM job's attestation (tests): "" none,
	// TamperStatement, TamperWrappingKey or TamperExtractable.
	Tamper string
	// TestKeys, for tests and rehearsals only: see keypool.go.
	TestKeys *emukeys.Source
}

// Ways to spoil an attestation.
const (
	TamperStatement   = "statement"    // a byte of the signed statement flipped
	TamperWrappingKey = "wrapping-key" // attests another key than the job's
	TamperExtractable = "extractable"  // the private key says CKA_EXTRACTABLE=true
)

// Fault makes the next call of Method fail with UNAVAILABLE, before its
// effect (Lost false) or after it, the answer lost (Lost true).
type Fault struct {
	Method string
	Lost   bool
}

// Server is the emulator. Its methods implement kmspb's server.
type Server struct {
	kmspb.UnimplementedKeyManagementServiceServer
	opts Options
	auth *attesttest.Authority

	mu       sync.Mutex
	rings    map[string]*kmspb.KeyRing
	keys     map[string]*cryptoKey
	jobs     map[string]*importJob
	faults   []Fault
	ordering []string // creation order of keys, for listing
}

// New returns an emulator with opts.
func New(opts Options) (*Server, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ImportJobTTL == 0 {
		opts.ImportJobTTL = 72 * time.Hour
	}
	auth := opts.Authority
	if auth == nil {
		var err error
		if auth, err = attesttest.NewWithKeys(opts.Now(), opts.TestKeys.RSA); err != nil {
			return nil, err
		}
	}
	return &Server{opts: opts, auth: auth, rings: map[string]*kmspb.KeyRing{}, keys: map[string]*cryptoKey{},
		jobs: map[string]*importJob{}, faults: append([]Fault{}, opts.Faults...)}, nil
}

// Authority is the test authority whose roots sign the attestations.
func (s *Server) Authority() *attesttest.Authority { return s.auth }

// Serve serves gRPC on l, which must be a loopback listener.
func (s *Server) Serve(l net.Listener) error {
	if err := CheckLoopback(l.Addr().String()); err != nil {
		return err
	}
	g := grpc.NewServer(grpc.UnaryInterceptor(s.intercept))
	kmspb.RegisterKeyManagementServiceServer(g, s)
	locationpb.RegisterLocationsServer(g, &locations{})
	return g.Serve(l)
}

// CheckLoopback refuses any address that is not on a loopback interface.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %v", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("listen address %q is not a loopback address: the emulator serves 127.0.0.1 or ::1 only", addr)
	}
	return nil
}

// intercept injects the configured faults.
func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	if err := s.checkProject(method, req); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var fault *Fault
	for i, f := range s.faults {
		if f.Method == method {
			fault = &f
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	if fault == nil {
		return h(ctx, req)
	}
	if fault.Lost {
		_, _ = h(ctx, req)
		return nil, status.Error(codes.Unavailable, "The service is currently unavailable. (injected fault: answer lost after the call took effect)")
	}
	return nil, status.Error(codes.Unavailable, "The service is currently unavailable. (injected fault: call not applied)")
}

func (s *Server) now() time.Time { return s.opts.Now() }

// Resource names, [proto] resource patterns; IDs as Cloud KMS documents
// them: letters, digits, '_' and '-', 1 to 63 characters.
var (
	idRE       = `[a-zA-Z0-9_-]{1,63}`
	locationRE = regexp.MustCompile(`^projects/([a-z][a-z0-9-]{4,28}[a-z0-9])/locations/([a-z0-9-]+)$`)
	ringRE     = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+)/keyRings/(` + idRE + `)$`)
	keyRE      = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/keyRings/[^/]+)/cryptoKeys/(` + idRE + `)$`)
	versionRE  = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+)/cryptoKeyVersions/([0-9]+)$`)
	jobRE      = regexp.MustCompile(`^(projects/[^/]+/locations/[^/]+/keyRings/[^/]+)/importJobs/(` + idRE + `)$`)
	idOnlyRE   = regexp.MustCompile(`^` + idRE + `$`)
)

// Locations the emulator serves: Cloud KMS's multi-regions and a set of
// regions. An unknown one is NOT_FOUND.
var Locations = map[string]bool{
	"global": true, "us": true, "europe": true, "asia": true,
	"us-central1": true, "us-east1": true, "us-east4": true, "us-west1": true, "us-west2": true,
	"europe-west1": true, "europe-west2": true, "europe-west3": true, "europe-west4": true,
	"asia-east1": true, "asia-northeast1": true, "australia-southeast1": true,
}

func invalidArg(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func notFound(kind, name string) error {
	// Recorded wording [kcc]: "KeyRing projects/… not found."
	return status.Errorf(codes.NotFound, "%s %s not found.", kind, name)
}

func checkLocation(parent string) error {
	m := locationRE.FindStringSubmatch(parent)
	if m == nil {
		return invalidArg("Resource name [%s] does not match any known type. It must be of the form projects/PROJECT_ID/locations/LOCATION.", parent)
	}
	if !Locations[m[2]] {
		return notFound("Location", parent)
	}
	return nil
}

func (s *Server) ring(name string) (*kmspb.KeyRing, error) {
	if ringRE.FindStringSubmatch(name) == nil {
		return nil, invalidArg("Resource name [%s] does not match any known type.", name)
	}
	r, ok := s.rings[name]
	if !ok {
		return nil, notFound("KeyRing", name)
	}
	return r, nil
}

// locations serves google.cloud.location.Locations.GetLocation, which
// Google's KMS client exposes, for the locations in Locations.
type locations struct {
	locationpb.UnimplementedLocationsServer
}

func (*locations) GetLocation(_ context.Context, req *locationpb.GetLocationRequest) (*locationpb.Location, error) {
	if err := checkLocation(req.GetName()); err != nil {
		return nil, err
	}
	m := locationRE.FindStringSubmatch(req.GetName())
	return &locationpb.Location{Name: req.GetName(), LocationId: m[2]}, nil
}

// checkProject refuses a request for a project not in Options.Projects
// with Google's usual wording for a missing permission or project (not
// recorded for Cloud KMS; docs/gcp-import.md).
func (s *Server) checkProject(method string, req any) error {
	if len(s.opts.Projects) == 0 {
		return nil
	}
	var name string
	switch r := req.(type) {
	case interface{ GetParent() string }:
		name = r.GetParent()
	case interface{ GetName() string }:
		name = r.GetName()
	}
	parts := strings.SplitN(name, "/", 3)
	if len(parts) < 2 || parts[0] != "projects" {
		return nil
	}
	for _, p := range s.opts.Projects {
		if parts[1] == p {
			return nil
		}
	}
	return status.Errorf(codes.PermissionDenied, "Permission 'cloudkms.%s' denied on resource '%s' (or it may not exist).", method, name)
}
