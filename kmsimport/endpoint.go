package kmsimport

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// The endpoint policy: the one decision of where kmsbridge may send a
// cloud KMS request, and so whose wrapping public key the HSM may wrap
// under. docs/endpoint-policy.md states it for operators, with its sources.
//
// A request may go to
//   - one of the cloud's own endpoints (Genuine: for AWS, the endpoints AWS
//     serves for the client's Region, kmsimport/aws/endpoint.go), over
//     https, verified against the system roots (or the CA bundle given with
//     --ca-bundle);
//   - or exactly the endpoint the operator named (--endpoint-url, kms.endpoint)
//     and confirmed (--allow-endpoint, kms.allow-endpoint); plain http only
//     to a loopback address.
//
// Every request's URL, as the SDK resolved it, passes EndpointPolicy.Check
// in the HTTP transport under the cloud's client (guard), so no
// configuration of the SDK can send one elsewhere.

// Ways an endpoint is allowed, as Endpoint.AllowedAs says.
const (
	AllowedAWS   = "aws"
	AllowedOptIn = "opt-in"
)

// EndpointError is a KMS endpoint the policy refuses. It is invalid input
// (exit 2), and no request was sent to it.
type EndpointError struct {
	URL    string
	Reason string
	Fix    string
}

func (e *EndpointError) Error() string {
	return fmt.Sprintf("KMS endpoint %s refused: %s; nothing was sent to it. %s", Excerpt(e.URL), e.Reason, e.Fix)
}

func (e *EndpointError) Unwrap() error { return ErrInvalidInput }

// RetryableError tells the SDK's retryer not to try again.
func (e *EndpointError) RetryableError() bool { return false }

// Genuine is one cloud's own endpoints: all a cloud supplies to the
// endpoint policy. Everything else (https on 443 for its own endpoints,
// any other only when named and confirmed, plain http only on loopback,
// credentials in a URL refused, the messages) is EndpointPolicy's, the
// same for every cloud.
type Genuine struct {
	// Cloud names the cloud in messages and records ("aws", "google",
	// "azure"): Endpoint.AllowedAs of its own endpoints.
	Cloud string
	// Match reports whether host (lower case, no trailing dot) is one of
	// the cloud's own endpoints, and which kind (an AWS partition, a
	// sovereign cloud), or "" for none.
	Match func(host string) (kind string, ok bool)
	// Names says which endpoints are the cloud's own, for messages: "an
	// endpoint AWS serves for Region eu-west-1 (kms.eu-west-1...)".
	Names string
}

// EndpointPolicy decides whether a request URL may be sent.
type EndpointPolicy struct {
	Genuine Genuine
	// allowed is the endpoint the operator named and confirmed; nil when
	// only AWS's endpoints are allowed.
	Allowed *url.URL
	// named and optIn are how the operator names and confirms an endpoint,
	// for messages: --endpoint-url/--allow-endpoint, or the ceremony file's
	// kms.endpoint/kms.allow-endpoint.
	Named, OptIn string
}

// check returns how u is allowed (AllowedAWS and the partition, or
// AllowedOptIn), or an *EndpointError.
func (p EndpointPolicy) Check(u *url.URL) (string, string, error) {
	origin := OriginOf(u)
	if u.User != nil {
		return "", "", &EndpointError{URL: origin, Reason: "it carries credentials in the URL", Fix: "remove the user:password@ part"}
	}
	if u.Scheme == "https" && (u.Port() == "" || u.Port() == "443") && p.Genuine.Match != nil {
		if part, ok := p.Genuine.Match(strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))); ok {
			return p.Genuine.Cloud, part, nil
		}
	}
	if strings.EqualFold(u.Scheme, "http") && !isLoopback(u.Hostname()) {
		return "", "", &EndpointError{URL: origin, Reason: "plain http is allowed only to a loopback address (127.0.0.1, ::1, localhost), even when confirmed: requests would travel in plaintext, and anyone on the path could swap the wrapping public key",
			Fix: "Use https:// (with --ca-bundle FILE for a private CA)"}
	}
	if p.Allowed != nil && SameEndpoint(u, p.Allowed) {
		return AllowedOptIn, "", nil
	}
	reason := fmt.Sprintf("it is not %s, and the HSM would wrap the key material under whatever public key it hands out", p.Genuine.Names)
	if p.Allowed != nil {
		reason = fmt.Sprintf("it is neither %s nor the confirmed %s", p.Genuine.Names, OriginOf(p.Allowed))
	}
	return "", "", &EndpointError{URL: origin, Reason: reason, Fix: p.Fix(origin)}
}

// fix says how to use origin on purpose.
func (p EndpointPolicy) Fix(origin string) string {
	return "If this endpoint is meant (an emulator for a rehearsal), " + p.OptInArgs(origin)
}

// optInArgs is what names and confirms origin.
func (p EndpointPolicy) OptInArgs(origin string) string {
	if p.OptIn == "kms.allow-endpoint" {
		return fmt.Sprintf("name it in the ceremony file: kms.endpoint: %s and kms.allow-endpoint: %s", origin, origin)
	}
	return fmt.Sprintf("name it and confirm it: --endpoint-url %s --allow-endpoint %s", origin, origin)
}

// OriginOf is scheme://host[:port] of u, the part the policy decides on.
func OriginOf(u *url.URL) string {
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
}

// SameEndpoint reports whether a and b are the same scheme, host and port.
func SameEndpoint(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(strings.TrimSuffix(a.Hostname(), "."), strings.TrimSuffix(b.Hostname(), ".")) && portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// isLoopback reports whether host names this machine without DNS.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseEndpointURL parses an endpoint URL given as flag.
func ParseEndpointURL(flag, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, invalid("%s %q is not an endpoint URL: write http(s)://HOST[:PORT], e.g. https://kms.eu-west-1.amazonaws.com", flag, Excerpt(s))
	}
	if u.User != nil {
		return nil, invalid("%s must not carry credentials: remove the user:password@ part and use --profile or the usual AWS credential chain", flag)
	}
	return u, nil
}

// Endpoint says where kmsbridge's KMS requests went: the endpoint as the
// SDK resolved it and the transport sent to, why the policy allowed it,
// and the identity of the TLS peer that answered.
type Endpoint struct {
	// URL is scheme://host[:port] of the requests.
	URL string `json:"Url"`
	// AllowedAs is "aws" (an endpoint AWS serves for the Region) or
	// "opt-in" (named and confirmed with --allow-endpoint).
	AllowedAs string `json:"AllowedAs"`
	// Partition is the AWS partition of an "aws" endpoint, or the domain
	// of another cloud's own endpoint.
	Partition string `json:"Partition,omitempty"`
	// Cloud is the cloud of a client other than AWS's ("google",
	// "azure"); empty for AWS.
	Cloud string `json:"Cloud,omitempty"`
	// TLS is the peer's certificate; nil over plain http (loopback only)
	// or before the first request.
	TLS *PeerTLS `json:"Tls,omitempty"`
	// CABundle is the CA bundle given with --ca-bundle, by path and
	// SHA-256; empty when the system roots verified the peer.
	CABundle string `json:"CaBundle,omitempty"`
	// Proxy is the HTTPS proxy the requests went through (TLS still ends
	// at the endpoint), without credentials.
	Proxy string `json:"Proxy,omitempty"`
}

// PeerTLS identifies the TLS certificate the endpoint presented.
type PeerTLS struct {
	Subject     string   `json:"Subject"`
	DNSNames    []string `json:"DnsNames,omitempty"`
	IPAddresses []string `json:"IpAddresses,omitempty"`
	Issuer      string   `json:"Issuer"`
	// SPKISHA256 is the SHA-256 of the certificate's SubjectPublicKeyInfo.
	SPKISHA256 string `json:"SpkiSha256"`
}

// Facts are e's record members, KmsEndpoint...
func (e Endpoint) Facts() map[string]string {
	m := map[string]string{"KmsEndpoint": e.URL, "KmsEndpointAllowedAs": e.AllowedAs}
	if e.Cloud != "" {
		m["KmsCloud"] = e.Cloud
	}
	if e.AllowedAs != AllowedOptIn && e.Partition != "" {
		m["KmsEndpointAllowedAs"] = e.AllowedAs + " (" + e.Partition + ")"
	}
	if e.TLS != nil {
		m["KmsTlsSubject"] = e.TLS.Subject
		m["KmsTlsNames"] = strings.Join(append(append([]string{}, e.TLS.DNSNames...), e.TLS.IPAddresses...), ",")
		m["KmsTlsSpkiSha256"] = e.TLS.SPKISHA256
	} else if strings.HasPrefix(e.URL, "http://") {
		m["KmsTls"] = "none: plain http on loopback"
	}
	if e.CABundle != "" {
		m["KmsCaBundle"] = e.CABundle
	}
	if e.Proxy != "" {
		m["KmsProxy"] = e.Proxy
	}
	return m
}

// String is e for a person: where, why allowed, and who answered.
func (e Endpoint) String() string {
	var b strings.Builder
	b.WriteString(e.URL)
	switch e.AllowedAs {
	case AllowedAWS:
		fmt.Fprintf(&b, " (AWS, partition %s)", e.Partition)
	case AllowedOptIn:
		if e.Cloud != "" {
			fmt.Fprintf(&b, " (NOT %s's own: confirmed with --allow-endpoint)", e.Cloud)
		} else {
			b.WriteString(" (NOT AWS: confirmed with --allow-endpoint)")
		}
	default:
		fmt.Fprintf(&b, " (%s's own", e.AllowedAs)
		if e.Partition != "" {
			fmt.Fprintf(&b, ", %s", e.Partition)
		}
		b.WriteString(")")
	}
	if e.TLS != nil {
		names := append(append([]string{}, e.TLS.DNSNames...), e.TLS.IPAddresses...)
		fmt.Fprintf(&b, "; TLS peer %s [%s], SPKI SHA-256 %s", e.TLS.Subject, strings.Join(names, ", "), e.TLS.SPKISHA256)
	} else if strings.HasPrefix(e.URL, "http://") {
		b.WriteString("; plain http on loopback, no TLS")
	}
	if e.CABundle != "" {
		fmt.Fprintf(&b, "; CA bundle %s", e.CABundle)
	}
	if e.Proxy != "" {
		fmt.Fprintf(&b, "; via proxy %s", e.Proxy)
	}
	return b.String()
}

// seen is what the transport saw: the endpoint of the last request, the
// TLS peer of the last handshake, the proxy used.
type Seen struct {
	mu   sync.Mutex
	Last Endpoint
	tls  *PeerTLS
}

func (s *Seen) request(u *url.URL, allowedAs, partition, proxy string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	origin := OriginOf(u)
	if s.Last.URL != origin {
		s.tls = nil
	}
	s.Last.URL, s.Last.AllowedAs, s.Last.Partition = origin, allowedAs, partition
	if proxy != "" {
		s.Last.Proxy = proxy
	}
}

func (s *Seen) handshake(cs tls.ConnectionState) {
	if len(cs.PeerCertificates) == 0 {
		return
	}
	c := cs.PeerCertificates[0]
	spki := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	p := &PeerTLS{Subject: c.Subject.String(), DNSNames: c.DNSNames, Issuer: c.Issuer.String(), SPKISHA256: hex.EncodeToString(spki[:])}
	for _, ip := range c.IPAddresses {
		p.IPAddresses = append(p.IPAddresses, ip.String())
	}
	s.mu.Lock()
	s.tls = p
	s.mu.Unlock()
}

func (s *Seen) Snapshot() Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.Last
	e.TLS = s.tls
	return e
}

// guard is the HTTP transport's gate: every request's URL passes the
// policy before it is sent, and what was sent where is noted.
type guard struct {
	base   http.RoundTripper
	policy EndpointPolicy
	seen   *Seen
}

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	as, part, err := g.policy.Check(req.URL)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	proxy := ""
	if pu, perr := http.ProxyFromEnvironment(req); perr == nil && pu != nil {
		proxy = (&url.URL{Scheme: pu.Scheme, Host: pu.Host}).String()
	}
	g.seen.request(req.URL, as, part, proxy)
	return g.base.RoundTrip(req)
}
