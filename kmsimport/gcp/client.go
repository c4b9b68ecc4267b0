package gcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	locationpb "google.golang.org/genproto/googleapis/cloud/location"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// API is the set of Cloud KMS calls kmsbridge makes. Google's
// *kms.KeyManagementClient satisfies it.
type API interface {
	GetLocation(context.Context, *locationpb.GetLocationRequest, ...gax.CallOption) (*locationpb.Location, error)
	GetKeyRing(context.Context, *kmspb.GetKeyRingRequest, ...gax.CallOption) (*kmspb.KeyRing, error)
	CreateKeyRing(context.Context, *kmspb.CreateKeyRingRequest, ...gax.CallOption) (*kmspb.KeyRing, error)
	GetCryptoKey(context.Context, *kmspb.GetCryptoKeyRequest, ...gax.CallOption) (*kmspb.CryptoKey, error)
	CreateCryptoKey(context.Context, *kmspb.CreateCryptoKeyRequest, ...gax.CallOption) (*kmspb.CryptoKey, error)
	GetImportJob(context.Context, *kmspb.GetImportJobRequest, ...gax.CallOption) (*kmspb.ImportJob, error)
	CreateImportJob(context.Context, *kmspb.CreateImportJobRequest, ...gax.CallOption) (*kmspb.ImportJob, error)
	ImportCryptoKeyVersion(context.Context, *kmspb.ImportCryptoKeyVersionRequest, ...gax.CallOption) (*kmspb.CryptoKeyVersion, error)
	GetCryptoKeyVersion(context.Context, *kmspb.GetCryptoKeyVersionRequest, ...gax.CallOption) (*kmspb.CryptoKeyVersion, error)
	ListCryptoKeyVersions(context.Context, *kmspb.ListCryptoKeyVersionsRequest, ...gax.CallOption) *kms.CryptoKeyVersionIterator
	Encrypt(context.Context, *kmspb.EncryptRequest, ...gax.CallOption) (*kmspb.EncryptResponse, error)
	Decrypt(context.Context, *kmspb.DecryptRequest, ...gax.CallOption) (*kmspb.DecryptResponse, error)
	GetPublicKey(context.Context, *kmspb.GetPublicKeyRequest, ...gax.CallOption) (*kmspb.PublicKey, error)
	MacSign(context.Context, *kmspb.MacSignRequest, ...gax.CallOption) (*kmspb.MacSignResponse, error)
}

var _ API = (*kms.KeyManagementClient)(nil)

// DefaultEndpoint is Cloud KMS's gRPC endpoint.
const DefaultEndpoint = "cloudkms.googleapis.com:443"

// Google is Cloud KMS's own endpoints, all under googleapis.com: the
// global cloudkms.googleapis.com, the regional
// cloudkms.REGION.rep.googleapis.com, mTLS cloudkms.mtls.googleapis.com,
// Private Service Connect cloudkms-ENDPOINT.p.googleapis.com, and
// private.googleapis.com / restricted.googleapis.com
// (docs/endpoint-policy.md has the sources). The policy is
// kmsimport.CheckCloudEndpoint's, the same as every cloud's.
var Google = kmsimport.Genuine{Cloud: "google",
	Match: func(host string) (string, bool) {
		name, ok := strings.CutSuffix(host, ".googleapis.com")
		return "googleapis.com", ok && name != "" && !strings.HasPrefix(name, ".")
	},
	Names: "a Google endpoint (HOST.googleapis.com over https on 443: cloudkms.googleapis.com, cloudkms.REGION.rep.googleapis.com, cloudkms.mtls.googleapis.com, a Private Service Connect cloudkms-NAME.p.googleapis.com, private.googleapis.com or restricted.googleapis.com)"}

// CheckEndpoint applies the endpoint policy to --endpoint-url ("" is
// Google's own endpoint): a Google endpoint over https, or one the
// operator named and confirmed with --allow-endpoint (allowed); plain
// http (plaintext gRPC) only to a loopback host, an emulator.
func CheckEndpoint(endpointURL string, allowed []string) error {
	_, err := checkEndpoint(endpointURL, allowed)
	return err
}

func checkEndpoint(endpointURL string, allowed []string) (*kmsimport.CloudEndpoint, error) {
	if endpointURL != "" {
		u, err := url.Parse(endpointURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, invalid("--endpoint-url %q is not a Cloud KMS endpoint URL: write https://HOST:PORT (or http://127.0.0.1:PORT for a local emulator)", kmsimport.Excerpt(endpointURL))
		}
	}
	return kmsimport.CheckCloudEndpoint(Google, endpointURL, "https://"+DefaultEndpoint, allowed)
}

// ClientOptions choose the endpoint; credentials come from Application
// Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's, or the
// metadata server) except for a plaintext loopback emulator.
type ClientOptions struct {
	EndpointURL string
	// Allowed are the endpoints the operator allowed (--allow-endpoint).
	Allowed []string
}

// NewClient returns Google's Cloud KMS gRPC client for opts.
func NewClient(ctx context.Context, opts ClientOptions) (*kms.KeyManagementClient, error) {
	c, _, err := NewClientAt(ctx, opts)
	return c, err
}

// NewClientAt is NewClient, also saying where the client sends, as the
// endpoint policy allowed it, and (once it has connected over TLS) the
// TLS peer: its Endpoint method. It is the only place a Cloud KMS client
// is made (kmsimport's TestEveryCloudClientGoesThroughThePolicy).
func NewClientAt(ctx context.Context, opts ClientOptions) (*kms.KeyManagementClient, *kmsimport.CloudEndpoint, error) {
	ep, err := checkEndpoint(opts.EndpointURL, opts.Allowed)
	if err != nil {
		return nil, nil, err
	}
	o := []option.ClientOption{option.WithEndpoint(ep.URL.Hostname() + ":" + portOf(ep.URL))}
	if ep.URL.Scheme == "http" {
		o = append(o, option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	} else {
		// TLS verified against the system roots, as Google's default, and
		// the peer that answered noted for the result and the record.
		o = append(o, option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, VerifyConnection: ep.NoteTLS}))))
	}
	c, err := kms.NewKeyManagementClient(ctx, o...)
	if err != nil {
		return nil, nil, invalid("the Cloud KMS client cannot start: %s; check Application Default Credentials (gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)", kmsimport.Excerpt(err.Error()))
	}
	return c, ep, nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

// advice says, per gRPC code, what a failed Cloud KMS call means.
var advice = map[codes.Code]string{
	codes.NotFound:           "check --gcp-project, --gcp-location, --key-ring and --crypto-key",
	codes.PermissionDenied:   "the credentials lack a Cloud KMS permission on this resource (roles/cloudkms.importer and roles/cloudkms.admin for creating key rings and keys), or the project does not exist",
	codes.Unauthenticated:    "no valid Google credentials: run gcloud auth application-default login or set GOOGLE_APPLICATION_CREDENTIALS",
	codes.FailedPrecondition: "the resource is not in a state that allows this call",
	codes.InvalidArgument:    "Cloud KMS refused the request as malformed",
	codes.AlreadyExists:      "the resource exists already",
	codes.ResourceExhausted:  "a Cloud KMS quota was exceeded: wait and re-run the same command",
	codes.Unavailable:        "Cloud KMS did not answer: re-run the same command; kmsbridge finds what the call did",
	codes.DeadlineExceeded:   "Cloud KMS did not answer in time: re-run the same command; kmsbridge finds what the call did",
}

// explain turns a Cloud KMS error into a *kmsimport.KMSError (exit code 4).
func explain(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: Cloud KMS %s: %v", kmsimport.ErrInterrupted, op, err)
	}
	st, ok := status.FromError(err)
	if !ok {
		return &kmsimport.KMSError{Op: op, Message: serverText(err.Error()), Advice: "check the network and --endpoint-url", Transient: true}
	}
	return &kmsimport.KMSError{Op: op, Code: st.Code().String(), Message: serverText(st.Message()), Advice: advice[st.Code()],
		Transient: st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded || st.Code() == codes.ResourceExhausted}
}

// lost reports whether err leaves unknown whether the call took effect.
func lost(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return !errors.Is(err, context.Canceled)
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Unknown, codes.Internal, codes.Canceled:
		return true
	}
	return false
}

func isCode(err error, c codes.Code) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == c
}

// maxServerText bounds what of a server's message an error repeats.
const maxServerText = 300

// serverText makes text from the endpoint safe to print: control
// characters escaped, at most maxServerText characters, the cut said.
func serverText(s string) string {
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	if len(q) <= maxServerText {
		return q
	}
	return fmt.Sprintf("%s... (%d characters)", q[:maxServerText], len(s))
}
