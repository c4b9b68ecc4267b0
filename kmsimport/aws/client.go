// Package aws imports HSM key material into AWS KMS, behind kmsimport's
// cloud adapter: the narrow KMS client it calls, the import, rotate, renew,
// split, status and verify flows as named steps run by kmsimport's engine,
// and the translation of KMS exceptions into advice.
package aws

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
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

// ClientOptions choose the KMS endpoint and credentials. Empty Region and
// Profile fall back to the SDK's standard chain (AWS_REGION, AWS_PROFILE,
// shared config and credentials files, instance roles). The endpoint never
// does: it is AWS's for the Region unless EndpointURL names another and
// AllowEndpoint confirms it (docs/endpoint-policy.md).
type ClientOptions struct {
	Region  string
	Profile string
	// EndpointURL names the KMS endpoint; empty means AWS's for the Region.
	EndpointURL string
	// AllowEndpoint confirms EndpointURL when it is not an endpoint AWS
	// serves for the Region; it must name the same scheme, host and port.
	AllowEndpoint string
	// CABundle is the path of a PEM file of the CA certificates that
	// verify the endpoint instead of the system roots (a private CA).
	CABundle string
	// InFile is true when the endpoint settings come from a ceremony file:
	// messages then name its fields (kms.endpoint, kms.allow-endpoint,
	// kms.ca-bundle) instead of the flags.
	InFile bool
	// Timeout bounds each HTTP request to KMS; 0 means DefaultKMSTimeout.
	Timeout time.Duration
	// Limiter, when set, keeps requests under per-operation rates.
	Limiter *Limiter
}

// names are the option names messages use.
func (o ClientOptions) names() (endpoint, allow, caBundle string) {
	if o.InFile {
		return "kms.endpoint", "kms.allow-endpoint", "kms.ca-bundle"
	}
	return "--endpoint-url", "--allow-endpoint", "--ca-bundle"
}

// NewClient returns a real KMS client configured from opts and the standard
// AWS configuration chain, behind the endpoint policy. It refuses, before
// any request, an endpoint the policy refuses and an endpoint set in the
// environment or AWS config files that differs from the one in use. Reads
// are retried by the SDK within ReadAttempts and MaxBackoff; calls that
// change something are sent once by the SDK (see Client) and retried by
// kmsbridge only after it has checked that the first attempt took no effect.
//
// It is the only place a KMS client is made (TestOneKMSClientConstructor).
func NewClient(ctx context.Context, opts ClientOptions) (*Client, error) {
	nEndpoint, nAllow, nCA := opts.names()
	var named, allowed *url.URL
	if opts.EndpointURL != "" {
		var err error
		if named, err = kmsimport.ParseEndpointURL(nEndpoint, opts.EndpointURL); err != nil {
			return nil, err
		}
	}
	if opts.AllowEndpoint != "" {
		var err error
		if allowed, err = kmsimport.ParseEndpointURL(nAllow, opts.AllowEndpoint); err != nil {
			return nil, err
		}
		switch {
		case named == nil:
			return nil, invalid("%s confirms the endpoint named with %s: give both (%s URL %s URL), or neither to use AWS's endpoint", nAllow, nEndpoint, nEndpoint, nAllow)
		case !kmsimport.SameEndpoint(named, allowed):
			return nil, invalid("%s %s does not match %s %s: confirm exactly the endpoint named", nAllow, kmsimport.OriginOf(allowed), nEndpoint, kmsimport.OriginOf(named))
		}
	}
	var pool *x509.CertPool
	caDesc := ""
	if opts.CABundle != "" {
		pem, err := safefile.Read(nCA, opts.CABundle, safefile.MaxPEM)
		if err != nil {
			return nil, invalid("%v", err)
		}
		if pool, err = certPool(nCA, opts.CABundle, pem); err != nil {
			return nil, err
		}
		caDesc = opts.CABundle + " (SHA-256 " + kmsimport.SHA256Hex(pem) + ")"
	}

	var lo []func(*config.LoadOptions) error
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	if opts.Profile != "" {
		lo = append(lo, config.WithSharedConfigProfile(opts.Profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	var noProfile config.SharedConfigProfileNotExistError
	switch {
	case errors.As(err, &noProfile):
		return nil, invalid("AWS profile %q is not in the shared config or credentials files: check --profile (or AWS_PROFILE); aws configure list-profiles lists them", kmsimport.Excerpt(noProfile.Profile))
	case err != nil:
		return nil, invalid("the AWS configuration cannot be loaded: %s; check AWS_PROFILE, AWS_CONFIG_FILE and ~/.aws/config", kmsimport.Excerpt(err.Error()))
	}
	if cfg.Region == "" {
		return nil, invalid("no AWS region: give --region or set AWS_REGION")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultKMSTimeout
	}
	policy := kmsimport.EndpointPolicy{Genuine: AWSKMS(cfg.Region), Allowed: allowed, Named: nEndpoint, OptIn: nAllow}
	sn := &kmsimport.Seen{Last: kmsimport.Endpoint{CABundle: caDesc}}
	var ambient *string
	c := kms.NewFromConfig(cfg, func(o *kms.Options) {
		// What the SDK took from AWS_ENDPOINT_URL(_KMS) or the config
		// files is never used; it is checked below.
		ambient = o.BaseEndpoint
		o.BaseEndpoint = nil
		if named != nil {
			o.BaseEndpoint = aws.String(opts.EndpointURL)
		}
		if opts.Limiter != nil {
			o.APIOptions = append(o.APIOptions, opts.Limiter.APIOption())
		}
		o.HTTPClient = kmsimport.NewHTTPClient(awshttp.NewBuildableClient().GetTransport(), timeout, pool, policy, sn)
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
			// A certificate that does not verify will not verify on the
			// next attempt either: fail at once, naming it.
			so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				var cv *tls.CertificateVerificationError
				if errors.As(err, &cv) {
					return aws.FalseTernary
				}
				return aws.UnknownTernary
			})}, retry.DefaultRetryables...)
		})
	})
	// The endpoint as the SDK resolves it for these options, checked now
	// so a refusal comes before anything else; guard checks every request.
	o := c.Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, kms.EndpointParameters{
		Region:       aws.String(o.Region),
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		Endpoint:     o.BaseEndpoint,
	})
	if err != nil {
		return nil, invalid("no KMS endpoint for Region %s: %s; check --region", kmsimport.Excerpt(o.Region), kmsimport.Excerpt(err.Error()))
	}
	as, part, err := policy.Check(&ep.URI)
	if err != nil {
		return nil, err
	}
	if err := checkAmbient(ambient, &ep.URI, cfg, policy); err != nil {
		return nil, err
	}
	sn.Last.URL, sn.Last.AllowedAs, sn.Last.Partition = kmsimport.OriginOf(&ep.URI), as, part
	// The Resource Groups Tagging API of the same account and Region, for
	// the ownership authority's search by tag. It sends no key material;
	// it goes to the endpoint named and confirmed (an emulator serves both,
	// under the same guard), else to AWS's own tagging endpoint, never to
	// one taken from the environment or the config files.
	tags := tagging.NewFromConfig(cfg, func(to *tagging.Options) {
		to.BaseEndpoint = nil
		if named != nil {
			to.BaseEndpoint = aws.String(opts.EndpointURL)
			to.HTTPClient = kmsimport.NewHTTPClient(awshttp.NewBuildableClient().GetTransport(), timeout, pool, policy, &kmsimport.Seen{})
		} else {
			to.HTTPClient = awshttp.NewBuildableClient().WithTimeout(timeout).WithTransportOptions(func(tr *http.Transport) {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
			})
		}
		to.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = ReadAttempts
			so.MaxBackoff = MaxBackoff
			so.RateLimiter = ratelimit.None
		})
	})
	// STS, for the account of these credentials (the journal's scope):
	// like the tagging client, at the endpoint named and confirmed (the
	// emulator serves GetCallerIdentity), else at AWS's STS endpoint for
	// the Region, never at one from the environment or config files.
	who := sts.NewFromConfig(cfg, func(so *sts.Options) {
		so.BaseEndpoint = nil
		if named != nil {
			so.BaseEndpoint = aws.String(opts.EndpointURL)
			so.HTTPClient = kmsimport.NewHTTPClient(awshttp.NewBuildableClient().GetTransport(), timeout, pool, policy, &kmsimport.Seen{})
		} else {
			so.HTTPClient = awshttp.NewBuildableClient().WithTimeout(timeout).WithTransportOptions(func(tr *http.Transport) {
				tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
			})
		}
		so.Retryer = retry.NewStandard(func(ro *retry.StandardOptions) {
			ro.MaxAttempts = ReadAttempts
			ro.MaxBackoff = MaxBackoff
			ro.RateLimiter = ratelimit.None
		})
	})
	cl := &Client{Client: c, seen: sn, profile: resolvedProfile(opts.Profile, cfg), tags: tags, sts: who}
	if opts.CABundle == "" {
		if src := ambientCABundle(cfg); src != "" {
			cl.Notices = append(cl.Notices, fmt.Sprintf("%s is ignored: kmsbridge verifies the KMS endpoint against the system roots unless a CA bundle is given on purpose with %s FILE (it is then recorded)", src, nCA))
		}
	}
	return cl, nil
}

// checkAmbient refuses an endpoint the SDK took from the environment or
// the AWS config files (ambient, nil when none) that differs from the one
// in use: an operator who set it believes the key goes there.
func checkAmbient(ambient *string, inUse *url.URL, cfg aws.Config, policy kmsimport.EndpointPolicy) error {
	if ambient == nil || *ambient == "" {
		return nil
	}
	au, err := url.Parse(*ambient)
	if err != nil || au.Host == "" {
		au = &url.URL{Scheme: "https", Host: *ambient}
	}
	if kmsimport.SameEndpoint(au, inUse) {
		return nil
	}
	return &kmsimport.EndpointError{URL: *ambient,
		Reason: fmt.Sprintf("it is set in %s, and kmsbridge never takes the KMS endpoint from the environment or AWS config files (it would use %s)", ambientSource(cfg), kmsimport.OriginOf(inUse)),
		Fix:    fmt.Sprintf("Remove that setting (or set AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true) to use %s; or, if %s is meant, %s", kmsimport.OriginOf(inUse), kmsimport.OriginOf(au), policy.OptInArgs(kmsimport.OriginOf(au)))}
}

// ambientSource says where the SDK found an endpoint setting.
func ambientSource(cfg aws.Config) string {
	var src []string
	for _, v := range []string{"AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL"} {
		if os.Getenv(v) != "" {
			src = append(src, v)
		}
	}
	if len(src) > 0 {
		return "the environment (" + strings.Join(src, ", ") + ")"
	}
	file := "~/.aws/config"
	if f := os.Getenv("AWS_CONFIG_FILE"); f != "" {
		file = f
	}
	for _, s := range cfg.ConfigSources {
		if sc, ok := s.(config.SharedConfig); ok {
			return fmt.Sprintf("the AWS config file %s (profile %q: endpoint_url, or a services section's kms endpoint_url)", kmsimport.Excerpt(file), kmsimport.Excerpt(sc.Profile))
		}
	}
	return "the AWS configuration"
}

// ambientCABundle names a CA bundle the SDK would have used on its own:
// AWS_CA_BUNDLE or a profile's ca_bundle.
func ambientCABundle(cfg aws.Config) string {
	if v := os.Getenv("AWS_CA_BUNDLE"); v != "" {
		return "AWS_CA_BUNDLE=" + kmsimport.Excerpt(v)
	}
	for _, s := range cfg.ConfigSources {
		if sc, ok := s.(config.SharedConfig); ok && sc.CustomCABundle != "" {
			return fmt.Sprintf("ca_bundle %s of AWS profile %q", kmsimport.Excerpt(sc.CustomCABundle), kmsimport.Excerpt(sc.Profile))
		}
	}
	return ""
}

// resolvedProfile is the shared-config profile in use: the one given, else
// the SDK's (AWS_PROFILE), "" for the default profile.
func resolvedProfile(given string, cfg aws.Config) string {
	if given != "" {
		return given
	}
	for _, s := range cfg.ConfigSources {
		if sc, ok := s.(config.SharedConfig); ok && sc.Profile != "default" {
			return sc.Profile
		}
	}
	return ""
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
	// Notices are settings the client ignored on purpose, for the log.
	Notices []string
	seen    *kmsimport.Seen
	profile string
	tags    *tagging.Client
	sts     callerIdentity
	// account is the account of the credentials, once learnt.
	accountMu sync.Mutex
	account   string
	// AccountSource says how the account was learnt when not from STS
	// (an endpoint of the operator's own that serves no STS); "" for STS.
	AccountSource string
}

// callerIdentity is STS's GetCallerIdentity; *sts.Client is one.
type callerIdentity interface {
	GetCallerIdentity(context.Context, *sts.GetCallerIdentityInput, ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// accountID is the form of an AWS account id.
var accountID = lazyre.New(`^[0-9]{12}$`)

// Account is the AWS account the client's credentials belong to, from
// STS GetCallerIdentity (which needs no IAM permission), asked once. The
// KMS keys kmsbridge creates are this account's.
func (c *Client) Account(ctx context.Context) (string, error) {
	c.accountMu.Lock()
	defer c.accountMu.Unlock()
	if c.account != "" {
		return c.account, nil
	}
	if c.sts == nil {
		return "", fmt.Errorf("%w: this KMS client cannot learn its account", kmsimport.ErrInvalidInput)
	}
	out, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil && c.Endpoint().AllowedAs == kmsimport.AllowedOptIn && answered(err) {
		// An endpoint of the operator's own (an emulator, a KMS-compatible
		// service) that answered but does not serve STS: its account is
		// the one its aliases' ARNs name, or, with none, "unknown" (the
		// scope still names the endpoint itself). AWS's own endpoints
		// always serve STS, so they never come here.
		c.account, c.AccountSource = UnknownAccount, "the endpoint does not serve STS GetCallerIdentity, and it lists no alias whose ARN names an account"
		if a, ok := c.accountOfAliases(ctx); ok {
			c.account, c.AccountSource = a, "the endpoint does not serve STS GetCallerIdentity: the account its aliases' ARNs name"
		}
		return c.account, nil
	}
	if err != nil {
		// Explained as KMS's errors are (the endpoint refused, a TLS
		// certificate that does not verify, an endpoint that does not
		// speak the API, the network), with STS's own advice otherwise.
		e := explain("sts:GetCallerIdentity", err)
		var ke *kmsimport.KMSError
		if errors.As(e, &ke) && ke.Advice == "" {
			ke.Advice = "kmsbridge scopes its journal by the account of the credentials and asks STS for it before any change; check the credentials (--profile) and that STS is reachable from this host (a VPC endpoint com.amazonaws.REGION.sts where there is no internet access), then re-run the same command"
		}
		return "", e
	}
	a := aws.ToString(out.Account)
	if !accountID.MatchString(a) {
		return "", &kmsimport.KMSError{Op: "sts:GetCallerIdentity", Message: fmt.Sprintf("the answer's Account %q is not a 12-digit AWS account id", kmsimport.Excerpt(a)),
			Advice: "the endpoint that answered is not AWS STS as documented; check --endpoint-url"}
	}
	c.account = a
	return a, nil
}

// UnknownAccount is the account part of the journal scope of an endpoint
// the operator named and confirmed that serves no STS and names no account
// in its aliases' ARNs.
const UnknownAccount = "unknown"

// answered reports whether err is the endpoint's answer (an HTTP response,
// or a body that is not STS's), not a failure to reach it: only such an
// answer says that the endpoint does not serve STS.
func answered(err error) bool {
	var re *awshttp.ResponseError
	var de *smithy.DeserializationError
	return errors.As(err, &re) || errors.As(err, &de)
}

// accountOfAliases is the account named by the ARN of the first alias the
// endpoint lists, changing nothing.
func (c *Client) accountOfAliases(ctx context.Context) (string, bool) {
	out, err := c.Client.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(10)})
	if err != nil {
		return "", false
	}
	for _, a := range out.Aliases {
		if parsed, err := arn.Parse(aws.ToString(a.AliasArn)); err == nil && accountID.MatchString(parsed.AccountID) {
			return parsed.AccountID, true
		}
	}
	return "", false
}

// Scope names the KMS account a journal belongs to, learnt before the
// first change: the Region, the endpoint as resolved ("aws" for any
// endpoint AWS serves for the Region, else its host) and the account of
// the credentials (Account), e.g. "eu-west-1@aws@111122223333". It never
// comes from an environment variable. legacy are the names earlier
// kmsbridge versions gave the same journal (Region, endpoint and profile:
// LegacyTarget), for the journal to adopt.
func (c *Client) Scope(ctx context.Context) (target string, legacy []string, err error) {
	account, err := c.Account(ctx)
	if err != nil {
		return "", nil, err
	}
	return c.Options().Region + "@" + c.endpointName() + "@" + account, []string{c.LegacyTarget()}, nil
}

// endpointName is the endpoint part of a scope.
func (c *Client) endpointName() string {
	e := c.Endpoint()
	if e.AllowedAs != kmsimport.AllowedAWS {
		if u, err := url.Parse(e.URL); err == nil {
			return canonicalHost(u)
		}
	}
	return "aws"
}

// TagSearch is the Resource Groups Tagging API client of the same account
// and Region.
func (c *Client) TagSearch() TagSearch {
	if c.tags == nil {
		return nil
	}
	return c.tags
}

// Endpoint says where the client's requests go (before the first request)
// or went, with the TLS peer that answered.
func (c *Client) Endpoint() kmsimport.Endpoint { return c.seen.Snapshot() }

// LegacyTarget is the journal scope of kmsbridge before the account was
// part of it: the Region, the endpoint as resolved and the profile. Scope
// lists it so that such a journal is adopted, once.
func (c *Client) LegacyTarget() string {
	t := c.Options().Region + "@" + c.endpointName()
	if c.profile != "" {
		t += "@" + c.profile
	}
	return t
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

// canonicalHost names an endpoint's host so that spellings of one
// endpoint name one journal: lower case, "localhost" as 127.0.0.1, and no
// port when it is the scheme's default.
func canonicalHost(u *url.URL) string {
	h, port := strings.ToLower(u.Hostname()), u.Port()
	if h == "localhost" {
		h = "127.0.0.1"
	}
	if port == "" || u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		return h
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h + ":" + port
}
