package aws

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
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

// AWS's own KMS endpoints, as the endpoint policy (kmsimport.EndpointPolicy)
// accepts them without an opt-in: kms[-fips].REGION.DNS-SUFFIX,
// kms[-fips].REGION.DUAL-STACK-SUFFIX, or a VPC interface endpoint
// vpce-ID.kms[-fips].REGION.vpce.DNS-SUFFIX, in the partition the Region
// belongs to (awsPartitions). docs/endpoint-policy.md states it for
// operators, with its sources.

// awsPartition is one AWS partition's naming of its service endpoints, as
// aws-sdk-go-v2 internal/endpoints/awsrulesfn/partitions.json has it.
type awsPartition struct {
	id        string
	regions   *lazyre.Regexp
	dnsSuffix string
	dualStack string
}

var awsPartitions = []awsPartition{
	{"aws", lazyre.New(`^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$`), "amazonaws.com", "api.aws"},
	{"aws-cn", lazyre.New(`^cn-\w+-\d+$`), "amazonaws.com.cn", "api.amazonwebservices.com.cn"},
	{"aws-eusc", lazyre.New(`^eusc-(de)-\w+-\d+$`), "amazonaws.eu", "api.amazonwebservices.eu"},
	{"aws-iso", lazyre.New(`^us-iso-\w+-\d+$`), "c2s.ic.gov", "api.aws.ic.gov"},
	{"aws-iso-b", lazyre.New(`^us-isob-\w+-\d+$`), "sc2s.sgov.gov", "api.aws.scloud"},
	{"aws-iso-e", lazyre.New(`^eu-isoe-\w+-\d+$`), "cloud.adc-e.uk", "api.cloud-aws.adc-e.uk"},
	{"aws-iso-f", lazyre.New(`^us-isof-\w+-\d+$`), "csp.hci.ic.gov", "api.aws.hci.ic.gov"},
	{"aws-us-gov", lazyre.New(`^us-gov-\w+-\d+$`), "amazonaws.com", "api.aws"},
}

// partitionOf is the partition region belongs to (the patterns do not
// overlap: \w matches no hyphen, so us-gov-west-1 is not "aws").
func partitionOf(region string) (awsPartition, bool) {
	for _, p := range awsPartitions {
		if p.regions.MatchString(region) {
			return p, true
		}
	}
	return awsPartition{}, false
}

// vpceLabel is the first label of a VPC interface endpoint's DNS name:
// vpce-0123abcd-4567efgh, with an Availability Zone suffix for zonal names.
var vpceLabel = lazyre.New(`^vpce-[0-9a-z]+(-[0-9a-z]+)*$`)

// awsKMSHost reports whether host is a KMS endpoint AWS serves for region,
// and in which partition.
func awsKMSHost(host, region string) (string, bool) {
	p, ok := partitionOf(region)
	if !ok {
		return "", false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, svc := range []string{"kms", "kms-fips"} {
		for _, suffix := range []string{p.dnsSuffix, p.dualStack} {
			if host == svc+"."+region+"."+suffix {
				return p.id, true
			}
		}
		if first, rest, ok := strings.Cut(host, "."); ok && vpceLabel.MatchString(first) && rest == svc+"."+region+".vpce."+p.dnsSuffix {
			return p.id, true
		}
	}
	return "", false
}

// AWSKMS is AWS's own KMS endpoints for region (awsKMSHost).
func AWSKMS(region string) kmsimport.Genuine {
	return kmsimport.Genuine{Cloud: kmsimport.AllowedAWS,
		Match: func(host string) (string, bool) { return awsKMSHost(host, region) },
		Names: fmt.Sprintf("an endpoint AWS serves for Region %s (kms.%s.amazonaws.com, its FIPS or dual-stack names, or a VPC endpoint vpce-ID.kms.%s.vpce.amazonaws.com)", region, region, region)}
}

// CheckBundleEndpoint applies the endpoint policy offline, to the endpoint
// a bundle says its wrapping public key came from: wrap refuses a bundle
// from an endpoint that is not AWS's for the bundle's Region unless allow
// (--allow-endpoint on the offline host) names that same endpoint.
func CheckBundleEndpoint(b *kmsimport.Bundle, allow string) error {
	if b.KmsEndpoint == nil || b.KmsEndpoint.URL == "" {
		return invalid("the bundle names no KMS endpoint its wrapping public key came from: it was not made by this kmsbridge's prepare; run kmsbridge prepare again")
	}
	u, err := url.Parse(b.KmsEndpoint.URL)
	if err != nil || u.Host == "" {
		return invalid("the bundle's KmsEndpoint %q is not a URL: the file was altered; run kmsbridge prepare again", kmsimport.Excerpt(b.KmsEndpoint.URL))
	}
	p := kmsimport.EndpointPolicy{Genuine: AWSKMS(b.Region), Named: "--endpoint-url", OptIn: "--allow-endpoint"}
	if allow != "" {
		if p.Allowed, err = kmsimport.ParseEndpointURL("--allow-endpoint", allow); err != nil {
			return err
		}
	}
	if _, _, err := p.Check(u); err != nil {
		var ee *kmsimport.EndpointError
		if errors.As(err, &ee) {
			ee.Reason = "the bundle's wrapping public key came from it, and " + ee.Reason
			ee.Fix = fmt.Sprintf("If that endpoint was meant (a rehearsal against an emulator), confirm it on this host too: --allow-endpoint %s", kmsimport.OriginOf(u))
		}
		return err
	}
	return nil
}
