package aws

import (
	"crypto/x509"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Located is a KMS client that can say where its requests went; *Client
// is one. Flows ask it when they take a wrapping public key.
type Located interface {
	Endpoint() kmsimport.Endpoint
}

// certPool parses a PEM CA bundle.
func certPool(what, path string, pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, invalid("%s %s holds no PEM certificate: give the CA certificate(s) of the endpoint, PEM-encoded", what, kmsimport.Excerpt(path))
	}
	return pool, nil
}
