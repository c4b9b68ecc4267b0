package gcp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/kmsbridge/kmsbridge/gcpemu"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestTLSPeerOfTheCloudKMSClientIsNoted: over TLS, the Cloud KMS client
// made by NewClientAt notes the peer's certificate (subject, SPKI
// SHA-256) for the result and the record, as AWS's and Azure's clients
// do. The endpoint is an emulator behind TLS, confirmed with
// --allow-endpoint; the test's certificate is the system roots'
// (SSL_CERT_FILE) and credentials are a stand-in: the call may fail
// for want of a token, after the handshake the test looks at.
func TestTLSPeerOfTheCloudKMSClientIsNoted(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cloudkms test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", certFile)
	t.Setenv("SSL_CERT_DIR", dir)
	creds := filepath.Join(dir, "adc.json")
	if err := os.WriteFile(creds, []byte(`{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", creds)

	emu, err := gcpemu.New(gcpemu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})))
	kmspb.RegisterKeyManagementServiceServer(g, emu)
	go g.Serve(l)
	t.Cleanup(g.Stop)

	url := "https://" + l.Addr().String()
	c, ep, err := NewClientAt(context.Background(), ClientOptions{EndpointURL: url, Allowed: []string{url}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = c.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: "projects/p/locations/l/keyRings/r"})
	e := ep.Endpoint()
	spki := sha256.Sum256(mustParse(t, der).RawSubjectPublicKeyInfo)
	if e.URL != url || e.AllowedAs != kmsimport.AllowedOptIn || e.Cloud != "google" || e.TLS == nil || e.TLS.SPKISHA256 != hex.EncodeToString(spki[:]) {
		t.Fatalf("Endpoint() = %+v (TLS %+v), want %s opt-in google with SPKI %x", e, e.TLS, url, spki)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
