// Package azkvemu is a loopback Azure Key Vault (and Managed HSM) emulator
// for the BYOK import path, spoken to by Azure's own Go client (azkeys).
// It serves HTTPS with a generated self-signed certificate, answers the
// bearer challenge the SDK expects, creates keys (the Key Exchange Key
// among them), returns key bundles and imports `.byok` transfer blobs,
// unwrapping them as the service does. docs/azure-emulator.md gives the
// source of every rule.
package azkvemu

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Flavor is the service the emulator plays.
type Flavor int

const (
	// KeyVault is Key Vault Premium (vault.azure.net).
	KeyVault Flavor = iota
	// ManagedHSM is Managed HSM (managedhsm.azure.net): also oct-HSM keys.
	ManagedHSM
)

// Token is the bearer token the emulator accepts unless Server.Token is set.
const Token = "kmsbridge-emulator-token"

// Server is one vault.
type Server struct {
	Flavor Flavor
	// Token is the only bearer token accepted (default Token).
	Token string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// LenientPKCS8Padding accepts RSA and EC material whose PKCS#8 DER is
	// followed by 1 to 7 zero bytes, as SoftHSM2 2.6.1 wraps it. Whether
	// Key Vault accepts such material is not known: off by default, and a
	// success with it on proves nothing about the real service.
	LenientPKCS8Padding bool

	mu     sync.Mutex
	keys   map[string][]*version // by lower-cased name, oldest first
	faults map[string]Fault
	calls  map[string]int
	last   []byte // the last key_hsm received, for tests

	url      string
	caPEM    []byte
	listener net.Listener
	srv      *http.Server
}

type version struct {
	name    string
	id      string
	kty     string
	ops     []string
	rsa     *rsa.PrivateKey // KEK and created RSA keys (the vault's own)
	pub     any             // *rsa.PublicKey or *ecdsa.PublicKey
	crv     string
	oct     []byte // oct-HSM material (Managed HSM), never returned
	attrs   attributes
	tags    map[string]string
	created int64
}

// Fault is an injected failure of one operation ("create", "get",
// "import"): the Status is answered Times times, After the change is
// applied when After is true (a reply lost on the way back).
type Fault struct {
	Status int
	Times  int
	After  bool
}

// New returns a vault of the given flavor; Start serves it.
func New(f Flavor) *Server {
	return &Server{Flavor: f, keys: map[string][]*version{}, faults: map[string]Fault{}, calls: map[string]int{}}
}

// Start listens on 127.0.0.1:port (0 for any) with a fresh self-signed
// certificate.
func (s *Server) Start(port int) error {
	cert, caPEM, err := selfSigned()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	s.listener = ln
	s.caPEM = caPEM
	s.url = "https://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second}
	go s.srv.ServeTLS(ln, "", "")
	return nil
}

// Close stops the server.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

// URL is the vault URL, https://127.0.0.1:PORT.
func (s *Server) URL() string { return s.url }

// CAPEM is the certificate a client must trust.
func (s *Server) CAPEM() []byte { return s.caPEM }

// CertPool is CAPEM as a pool.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(s.caPEM)
	return p
}

// SetFault injects f into op.
func (s *Server) SetFault(op string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = f
}

// Calls counts the authorized calls of op that reached the handler.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// LastTransferBlob is the last .byok an import carried (decoded from
// key_hsm), so that a test can decode it with another tool.
func (s *Server) LastTransferBlob() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.last...)
}

// KEKPrivateKeyPEM is the newest version of key name's RSA private key
// (PKCS#8 PEM), for a test's independent decoder: an emulator-only hook,
// as a real vault never lets a KEK leave its HSM.
func (s *Server) KEKPrivateKeyPEM(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.keys[strings.ToLower(name)]
	if len(vs) == 0 || vs[len(vs)-1].rsa == nil {
		return nil
	}
	der, _ := x509.MarshalPKCS8PrivateKey(vs[len(vs)-1].rsa)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Versions is the number of versions of the key name.
func (s *Server) Versions(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys[strings.ToLower(name)])
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func selfSigned() (tls.Certificate, []byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "azkvemu loopback"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// apiError is the service's error body {"error":{"code","message"}}.
type apiError struct {
	status  int
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func badParameter(format string, a ...any) *apiError {
	return &apiError{status: 400, Code: "BadParameter", Message: fmt.Sprintf(format, a...)}
}

func (s *Server) keyNotFound(name string) *apiError {
	if s.Flavor == ManagedHSM {
		return &apiError{status: 404, Code: "KeyNotFound", Message: fmt.Sprintf("Key not found: %s/keys/%s (Activity ID: %s)", s.url, name, activityID())}
	}
	return &apiError{status: 404, Code: "KeyNotFound", Message: fmt.Sprintf("A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", name)}
}

func activityID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) resource() string {
	if s.Flavor == ManagedHSM {
		return "https://managedhsm.azure.net"
	}
	return "https://vault.azure.net"
}

var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

const maxBody = 1 << 20

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	want := s.Token
	if want == "" {
		want = Token
	}
	if r.Header.Get("Authorization") != "Bearer "+want {
		// As recorded: 401, the challenge header, an empty body.
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000", resource=%q`, s.resource()))
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		writeErr(w, badParameter("The request is missing the api-version query parameter"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeErr(w, badParameter("The request body is too large or unreadable"))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var op string
	var handler func() (any, *apiError)
	switch {
	case len(parts) == 3 && parts[0] == "keys" && parts[2] == "create" && r.Method == http.MethodPost:
		op, handler = "create", func() (any, *apiError) { return s.create(parts[1], body) }
	case len(parts) == 2 && parts[0] == "keys" && r.Method == http.MethodPut:
		op, handler = "import", func() (any, *apiError) { return s.importKey(parts[1], body) }
	case (len(parts) == 2 || len(parts) == 3) && parts[0] == "keys" && r.Method == http.MethodGet:
		v := ""
		if len(parts) == 3 {
			v = parts[2]
		}
		op, handler = "get", func() (any, *apiError) { return s.get(parts[1], v) }
	case len(parts) == 3 && parts[0] == "keys" && r.Method == http.MethodPatch:
		op, handler = "update", func() (any, *apiError) { return s.update(parts[1], parts[2], body) }
	case (len(parts) == 3 || len(parts) == 4) && parts[0] == "keys" && r.Method == http.MethodPost && opName[parts[len(parts)-1]] != "":
		v := ""
		if len(parts) == 4 {
			v = parts[2]
		}
		action := parts[len(parts)-1]
		op, handler = action, func() (any, *apiError) { return s.crypt(parts[1], v, action, body) }
	default:
		writeErr(w, &apiError{status: 400, Code: "BadParameter", Message: fmt.Sprintf("action %q not supported by this emulator", r.Method+" "+r.URL.Path)})
		return
	}
	if len(parts) >= 2 && !nameRE.MatchString(parts[1]) {
		writeErr(w, s.invalidName(parts[1]))
		return
	}
	s.mu.Lock()
	s.calls[op]++
	f, faulty := s.faults[op]
	if faulty && f.Times > 0 {
		f.Times--
		s.faults[op] = f
	} else {
		faulty = false
	}
	s.mu.Unlock()
	if faulty && !f.After {
		writeErr(w, &apiError{status: f.Status, Code: "InjectedFault", Message: "injected fault before " + op})
		return
	}
	out, aerr := handler()
	if faulty {
		writeErr(w, &apiError{status: f.Status, Code: "InjectedFault", Message: "injected fault after " + op})
		return
	}
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	writeJSON(w, 200, out)
}

func (s *Server) invalidName(n string) *apiError {
	if s.Flavor == ManagedHSM {
		return badParameter("Invalid key identifier or name (Activity ID: %s)", activityID())
	}
	return badParameter("The request URI contains an invalid name: %s", n)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
