// Package kmsimport holds everything kmsbridge does with AWS KMS: the narrow
// client interface it calls, the wrapping algorithms and their rules, the
// import flow as a sequence of named steps, and the translation of KMS
// exceptions into advice.
package kmsimport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
)

// API is the set of KMS operations kmsbridge calls. *kms.Client satisfies
// it; unit tests use a fake with function fields.
type API interface {
	CreateKey(context.Context, *kms.CreateKeyInput, ...func(*kms.Options)) (*kms.CreateKeyOutput, error)
	DescribeKey(context.Context, *kms.DescribeKeyInput, ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
	GetParametersForImport(context.Context, *kms.GetParametersForImportInput, ...func(*kms.Options)) (*kms.GetParametersForImportOutput, error)
	ImportKeyMaterial(context.Context, *kms.ImportKeyMaterialInput, ...func(*kms.Options)) (*kms.ImportKeyMaterialOutput, error)
	DeleteImportedKeyMaterial(context.Context, *kms.DeleteImportedKeyMaterialInput, ...func(*kms.Options)) (*kms.DeleteImportedKeyMaterialOutput, error)
	CreateAlias(context.Context, *kms.CreateAliasInput, ...func(*kms.Options)) (*kms.CreateAliasOutput, error)
	ListAliases(context.Context, *kms.ListAliasesInput, ...func(*kms.Options)) (*kms.ListAliasesOutput, error)
	ListKeys(context.Context, *kms.ListKeysInput, ...func(*kms.Options)) (*kms.ListKeysOutput, error)
	TagResource(context.Context, *kms.TagResourceInput, ...func(*kms.Options)) (*kms.TagResourceOutput, error)
	ListResourceTags(context.Context, *kms.ListResourceTagsInput, ...func(*kms.Options)) (*kms.ListResourceTagsOutput, error)
	Encrypt(context.Context, *kms.EncryptInput, ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(context.Context, *kms.DecryptInput, ...func(*kms.Options)) (*kms.DecryptOutput, error)
	GenerateMac(context.Context, *kms.GenerateMacInput, ...func(*kms.Options)) (*kms.GenerateMacOutput, error)
	GetPublicKey(context.Context, *kms.GetPublicKeyInput, ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error)
	Sign(context.Context, *kms.SignInput, ...func(*kms.Options)) (*kms.SignOutput, error)

	// The life of imported material after the first import: status, renew,
	// rotate and multi-Region keys.
	ListKeyRotations(context.Context, *kms.ListKeyRotationsInput, ...func(*kms.Options)) (*kms.ListKeyRotationsOutput, error)
	RotateKeyOnDemand(context.Context, *kms.RotateKeyOnDemandInput, ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error)
	UpdateAlias(context.Context, *kms.UpdateAliasInput, ...func(*kms.Options)) (*kms.UpdateAliasOutput, error)
	UntagResource(context.Context, *kms.UntagResourceInput, ...func(*kms.Options)) (*kms.UntagResourceOutput, error)
	ReplicateKey(context.Context, *kms.ReplicateKeyInput, ...func(*kms.Options)) (*kms.ReplicateKeyOutput, error)
}

var _ API = (*kms.Client)(nil)

// Bounds of KMS calls; docs/exactly-once.md states them for operators.
const (
	// DefaultKMSTimeout bounds one KMS request (connect, send, answer).
	DefaultKMSTimeout = 30 * time.Second
	// ReadAttempts is how often a read (Describe, List, Get) is tried
	// when it fails transiently: 5xx, throttling, a reset or a timeout.
	ReadAttempts = 5
	// MaxBackoff caps the wait between two attempts; waits grow
	// exponentially from about 100ms with full jitter.
	MaxBackoff = 5 * time.Second
)

// ClientOptions choose the KMS endpoint and credentials. Empty fields fall
// back to the SDK's standard chain: AWS_REGION, AWS_PROFILE,
// AWS_ENDPOINT_URL_KMS, shared config and credentials files, instance roles.
type ClientOptions struct {
	Region      string
	Profile     string
	EndpointURL string
	// Timeout bounds each HTTP request to KMS; 0 means DefaultKMSTimeout.
	Timeout time.Duration
	// Limiter, when set, keeps requests under per-operation rates.
	Limiter *Limiter
}

// NewClient returns a real KMS client configured from opts and the standard
// AWS configuration chain. Reads are retried by the SDK within ReadAttempts
// and MaxBackoff; calls that change something are sent once by the SDK
// (see Client) and retried by kmsbridge only after it has checked that the
// first attempt took no effect.
func NewClient(ctx context.Context, opts ClientOptions) (*Client, error) {
	var lo []func(*config.LoadOptions) error
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		lo = append(lo, config.WithSharedConfigProfile(opts.Profile))
	}
	if err := CheckEndpointURL(opts.EndpointURL); err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	var noProfile config.SharedConfigProfileNotExistError
	switch {
	case errors.As(err, &noProfile):
		return nil, invalid("AWS profile %q is not in the shared config or credentials files: check --profile (or AWS_PROFILE); aws configure list-profiles lists them", Excerpt(noProfile.Profile))
	case err != nil:
		return nil, invalid("the AWS configuration cannot be loaded: %s; check AWS_PROFILE, AWS_CONFIG_FILE and ~/.aws/config", Excerpt(err.Error()))
	}
	if cfg.Region == "" {
		return nil, invalid("no AWS region: give --region or set AWS_REGION")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultKMSTimeout
	}
	c := kms.NewFromConfig(cfg, func(o *kms.Options) {
		if opts.EndpointURL != "" {
			o.BaseEndpoint = aws.String(opts.EndpointURL)
		}
		if opts.Limiter != nil {
			o.APIOptions = append(o.APIOptions, opts.Limiter.APIOption())
		}
		o.HTTPClient = newHTTPClient(timeout)
		// The standard mode, not the adaptive one: after a throttle the
		// adaptive mode slows every operation of the client, but KMS's
		// quotas are per operation (docs/kms-quotas.md has the measurement).
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = ReadAttempts
			so.MaxBackoff = MaxBackoff
			// A ceremony retries few calls; the SDK's client-side retry
			// quota would turn a burst of injected or real faults into
			// "retry quota exceeded" for later, unrelated calls.
			so.RateLimiter = ratelimit.None
		})
	})
	// The Resource Groups Tagging API of the same account and Region, at
	// the same endpoint when one was given (an emulator serves both), for
	// the ownership authority's search by tag.
	tags := tagging.NewFromConfig(cfg, func(o *tagging.Options) {
		if opts.EndpointURL != "" {
			o.BaseEndpoint = aws.String(opts.EndpointURL)
		}
		o.HTTPClient = newHTTPClient(timeout)
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = ReadAttempts
			so.MaxBackoff = MaxBackoff
			so.RateLimiter = ratelimit.None
		})
	})
	return &Client{Client: c, tags: tags}, nil
}

// newHTTPClient is the HTTP client under the KMS client: the SDK's
// default transport, a whole-request timeout, no redirects, and each
// request's body handed to the transport as its own buffered copy.
//
// The copy is the fix for requests re-sent with no fault at all: the SDK
// closes a request's body as soon as the response headers arrive, while
// net/http's writer may still read that body once more (to check it has
// no bytes beyond its Content-Length). That read then fails, the writer
// closes the connection, the response body (not yet arrived when a proxy
// or network splits headers and body) cannot be read, and the SDK's retry
// sends the request again: a second CreateKey. A body the SDK cannot close
// under the transport removes the race.
func newHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport: ownBody{awshttp.NewBuildableClient().GetTransport()},
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

// Client is the KMS client kmsbridge uses. The calls whose repetition
// could duplicate an effect (CreateKey, ImportKeyMaterial, CreateAlias,
// UpdateAlias, TagResource, UntagResource, DeleteImportedKeyMaterial,
// ScheduleKeyDeletion, ReplicateKey, RotateKeyOnDemand) are sent at most
// once by the SDK: if the answer is lost,
// kmsbridge first looks for the effect, then decides whether to send
// again. Every other call goes straight to the SDK's client.
type Client struct {
	*kms.Client
	tags *tagging.Client
}

// TagSearch is the Resource Groups Tagging API client of the same account
// and Region.
func (c *Client) TagSearch() TagSearch {
	if c.tags == nil {
		return nil
	}
	return c.tags
}

// once makes the SDK send a request a single time.
func once(o *kms.Options) { o.Retryer = retry.AddWithMaxAttempts(o.Retryer, 1) }

// CreateKey is sent once; see Client.
func (c *Client) CreateKey(ctx context.Context, in *kms.CreateKeyInput, opts ...func(*kms.Options)) (*kms.CreateKeyOutput, error) {
	return c.Client.CreateKey(ctx, in, append(opts, once)...)
}

// ImportKeyMaterial is sent once; see Client.
func (c *Client) ImportKeyMaterial(ctx context.Context, in *kms.ImportKeyMaterialInput, opts ...func(*kms.Options)) (*kms.ImportKeyMaterialOutput, error) {
	return c.Client.ImportKeyMaterial(ctx, in, append(opts, once)...)
}

// CreateAlias is sent once; see Client.
func (c *Client) CreateAlias(ctx context.Context, in *kms.CreateAliasInput, opts ...func(*kms.Options)) (*kms.CreateAliasOutput, error) {
	return c.Client.CreateAlias(ctx, in, append(opts, once)...)
}

// UpdateAlias is sent once; see Client.
func (c *Client) UpdateAlias(ctx context.Context, in *kms.UpdateAliasInput, opts ...func(*kms.Options)) (*kms.UpdateAliasOutput, error) {
	return c.Client.UpdateAlias(ctx, in, append(opts, once)...)
}

// TagResource is sent once; see Client.
func (c *Client) TagResource(ctx context.Context, in *kms.TagResourceInput, opts ...func(*kms.Options)) (*kms.TagResourceOutput, error) {
	return c.Client.TagResource(ctx, in, append(opts, once)...)
}

// DeleteImportedKeyMaterial is sent once; see Client.
func (c *Client) DeleteImportedKeyMaterial(ctx context.Context, in *kms.DeleteImportedKeyMaterialInput, opts ...func(*kms.Options)) (*kms.DeleteImportedKeyMaterialOutput, error) {
	return c.Client.DeleteImportedKeyMaterial(ctx, in, append(opts, once)...)
}

// ScheduleKeyDeletion is sent once; see Client.
func (c *Client) ScheduleKeyDeletion(ctx context.Context, in *kms.ScheduleKeyDeletionInput, opts ...func(*kms.Options)) (*kms.ScheduleKeyDeletionOutput, error) {
	return c.Client.ScheduleKeyDeletion(ctx, in, append(opts, once)...)
}

// ReplicateKey is sent once; see Client.
func (c *Client) ReplicateKey(ctx context.Context, in *kms.ReplicateKeyInput, opts ...func(*kms.Options)) (*kms.ReplicateKeyOutput, error) {
	return c.Client.ReplicateKey(ctx, in, append(opts, once)...)
}

// UntagResource is sent once; see Client.
func (c *Client) UntagResource(ctx context.Context, in *kms.UntagResourceInput, opts ...func(*kms.Options)) (*kms.UntagResourceOutput, error) {
	return c.Client.UntagResource(ctx, in, append(opts, once)...)
}

// RotateKeyOnDemand is sent once; see Client. A second request while the
// first one's rotation is under way is refused by KMS (ConflictException).
func (c *Client) RotateKeyOnDemand(ctx context.Context, in *kms.RotateKeyOnDemandInput, opts ...func(*kms.Options)) (*kms.RotateKeyOnDemandOutput, error) {
	return c.Client.RotateKeyOnDemand(ctx, in, append(opts, once)...)
}

// CheckEndpointURL fails unless u is empty or an http or https URL with a
// host and nothing after the path, as the KMS client needs.
func CheckEndpointURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" {
		return invalid("--endpoint-url %q is not an endpoint URL: write http(s)://HOST[:PORT], e.g. https://kms.eu-west-1.amazonaws.com", Excerpt(u))
	}
	return nil
}
