package kmsimport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// NewHTTPClient is the HTTP client under a cloud's KMS client: base (the
// cloud SDK's own default transport, or nil for DefaultTransport's)
// verifying TLS against the system roots (or pool), the endpoint policy's
// guard before it, a whole-request timeout, no redirects, and each
// request's body handed to the transport as its own buffered copy. base is
// changed: pass a fresh transport.
//
// The copy is the fix for requests re-sent with no fault at all: the SDK
// closes a request's body as soon as the response headers arrive, while
// net/http's writer may still read that body once more (to check it has
// no bytes beyond its Content-Length). That read then fails, the writer
// closes the connection, the response body (not yet arrived when a proxy
// or network splits headers and body) cannot be read, and the SDK's retry
// sends the request again: a second CreateKey. A body the SDK cannot close
// under the transport removes the race.
func NewHTTPClient(base *http.Transport, timeout time.Duration, pool *x509.CertPool, policy EndpointPolicy, sn *Seen) *http.Client {
	tr := base
	if tr == nil {
		tr = DefaultTransport()
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = pool // nil: the system roots
	tr.TLSClientConfig.InsecureSkipVerify = false
	// Called after the chain and name are verified: it only notes who
	// answered.
	tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
		sn.handshake(cs)
		return nil
	}
	return &http.Client{
		Transport: guard{base: ownBody{tr}, policy: policy, seen: sn},
		Timeout:   timeout,
		// KMS never redirects; following one could send a signed
		// request elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// DefaultTransport is the transport under a cloud's client whose SDK
// brings none of its own: the settings AWS's SDK gives its default
// transport (proxy from the environment, 30 s dial and keep-alive, 10 s
// TLS handshake, TLS 1.2 at least, HTTP/2, the same connection pool), so
// every cloud's client connects alike.
func DefaultTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		MaxConnsPerHost:       2048,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		ForceAttemptHTTP2:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// ownBody gives the transport a private, in-memory copy of each request
// body. KMS requests are small (the largest, ImportKeyMaterial, is a few
// kilobytes).
type ownBody struct{ base http.RoundTripper }

func (t ownBody) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return t.base.RoundTrip(req)
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	r := req.Clone(req.Context())
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.ContentLength = int64(len(b))
	return t.base.RoundTrip(r)
}
