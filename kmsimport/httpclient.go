package kmsimport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// NewHTTPClient is the HTTP client under the KMS client: the SDK's
// default transport verifying TLS against the system roots (or pool), the
// endpoint policy's guard before it, a whole-request timeout, no
// redirects, and each request's body handed to the transport as its own
// buffered copy.
//
// The copy is the fix for requests re-sent with no fault at all: the SDK
// closes a request's body as soon as the response headers arrive, while
// net/http's writer may still read that body once more (to check it has
// no bytes beyond its Content-Length). That read then fails, the writer
// closes the connection, the response body (not yet arrived when a proxy
// or network splits headers and body) cannot be read, and the SDK's retry
// sends the request again: a second CreateKey. A body the SDK cannot close
// under the transport removes the race.
func NewHTTPClient(timeout time.Duration, pool *x509.CertPool, policy EndpointPolicy, sn *Seen) *http.Client {
	tr := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		tr.TLSClientConfig.RootCAs = pool // nil: the system roots
		tr.TLSClientConfig.InsecureSkipVerify = false
		// Called after the chain and name are verified: it only notes
		// who answered.
		tr.TLSClientConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			sn.handshake(cs)
			return nil
		}
	}).GetTransport()
	return &http.Client{
		Transport: guard{base: ownBody{tr}, policy: policy, seen: sn},
		Timeout:   timeout,
		// KMS never redirects; following one could send a signed
		// request elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
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
