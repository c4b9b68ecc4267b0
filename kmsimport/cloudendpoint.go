package kmsimport

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"time"
)

// The endpoint policy for the other clouds' clients: the same
// EndpointPolicy as AWS's, given the cloud's own endpoints (Genuine). A
// cloud's client constructor calls CheckCloudEndpoint before it makes the
// SDK's client, and sends through CloudHTTPClient (HTTP SDKs), so every
// request passes the policy and the TLS peer is noted;
// TestEveryCloudClientGoesThroughThePolicy fails when a constructor does
// not.

// CloudEndpoint is a cloud client's endpoint as the policy allowed it.
type CloudEndpoint struct {
	// URL is the endpoint, scheme://host[:port].
	URL    *url.URL
	policy EndpointPolicy
	seen   *Seen
}

// CheckCloudEndpoint applies the endpoint policy of cloud g to the
// endpoint a client will use: endpoint ("" means def, the cloud's own
// default), allowed only if it is one of g's own or named and confirmed
// by one of allowed (--allow-endpoint, same scheme, host and port); plain
// http only to a loopback address. A refusal is an *EndpointError (exit
// 2), before any request.
func CheckCloudEndpoint(g Genuine, endpoint, def string, allowed []string) (*CloudEndpoint, error) {
	raw := endpoint
	if raw == "" {
		raw = def
	}
	u, err := ParseEndpointURL("--endpoint-url", raw)
	if err != nil {
		return nil, err
	}
	if u.Path != "" && u.Path != "/" {
		return nil, invalid("--endpoint-url %q has a path: write http(s)://HOST[:PORT] with nothing after the host", Excerpt(raw))
	}
	p := EndpointPolicy{Genuine: g, Named: "--endpoint-url", OptIn: "--allow-endpoint"}
	for _, a := range allowed {
		au, err := ParseEndpointURL("--allow-endpoint", a)
		if err != nil {
			return nil, err
		}
		if SameEndpoint(au, u) {
			p.Allowed = au
			break
		}
	}
	if p.Allowed == nil && len(allowed) > 0 {
		p.Allowed, _ = url.Parse(allowed[0])
	}
	as, kind, err := p.Check(u)
	if err != nil {
		return nil, err
	}
	sn := &Seen{}
	sn.Last.URL, sn.Last.AllowedAs, sn.Last.Partition = OriginOf(u), as, kind
	if g.Cloud != AllowedAWS {
		sn.Last.Cloud = g.Cloud
	}
	return &CloudEndpoint{URL: u, policy: p, seen: sn}, nil
}

// Endpoint says where the client's requests go (before the first) or
// went, with the TLS peer that answered.
func (c *CloudEndpoint) Endpoint() Endpoint { return c.seen.Snapshot() }

// NoteTLS notes the TLS peer of a handshake: a tls.Config's
// VerifyConnection, for SDKs that make their own connections (gRPC).
func (c *CloudEndpoint) NoteTLS(cs tls.ConnectionState) error {
	c.seen.handshake(cs)
	return nil
}

// HTTPClient is the HTTP client for the cloud's SDK: TLS verified against
// the system roots (or pool), every request's URL checked against the
// policy before it is sent (a refusal is an *EndpointError), the TLS peer
// noted, a whole-request timeout and no redirects.
func (c *CloudEndpoint) HTTPClient(timeout time.Duration, pool *x509.CertPool) *http.Client {
	return NewHTTPClient(nil, timeout, pool, c.policy, c.seen)
}
