package aws

import (
	"errors"
	"net/url"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestAWSKMSHost(t *testing.T) {
	for _, tt := range []struct {
		host, region, partition string
	}{
		{"kms.eu-west-1.amazonaws.com", "eu-west-1", "aws"},
		{"KMS.EU-WEST-1.AMAZONAWS.COM.", "eu-west-1", "aws"},
		{"kms-fips.us-east-1.amazonaws.com", "us-east-1", "aws"},
		{"kms.us-east-1.api.aws", "us-east-1", "aws"},
		{"kms-fips.us-east-1.api.aws", "us-east-1", "aws"},
		{"vpce-0123456789abcdef0-abcdefgh.kms.eu-west-1.vpce.amazonaws.com", "eu-west-1", "aws"},
		{"vpce-0123456789abcdef0-abcdefgh-eu-west-1a.kms.eu-west-1.vpce.amazonaws.com", "eu-west-1", "aws"},
		{"kms.us-gov-west-1.amazonaws.com", "us-gov-west-1", "aws-us-gov"},
		{"kms.cn-north-1.amazonaws.com.cn", "cn-north-1", "aws-cn"},
		{"kms.us-iso-east-1.c2s.ic.gov", "us-iso-east-1", "aws-iso"},
		{"kms.us-isob-east-1.sc2s.sgov.gov", "us-isob-east-1", "aws-iso-b"},
		{"kms.eu-isoe-west-1.cloud.adc-e.uk", "eu-isoe-west-1", "aws-iso-e"},
		{"kms.us-isof-south-1.csp.hci.ic.gov", "us-isof-south-1", "aws-iso-f"},
		{"kms.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1", "aws-eusc"},
		// Not AWS's for the Region.
		{"kms.eu-west-2.amazonaws.com", "eu-west-1", ""},
		{"kms.eu-west-1.amazonaws.com.evil.example", "eu-west-1", ""},
		{"evil.kms.eu-west-1.amazonaws.com", "eu-west-1", ""},
		{"kms.eu-west-1.amazonaws.com.cn", "eu-west-1", ""},
		{"kms.cn-north-1.amazonaws.com", "cn-north-1", ""},
		{"vpce-1.evil.kms.eu-west-1.vpce.amazonaws.com", "eu-west-1", ""},
		{"vpce-.kms.eu-west-1.vpce.amazonaws.com", "eu-west-1", ""},
		{"s3.eu-west-1.amazonaws.com", "eu-west-1", ""},
		{"127.0.0.1", "us-east-1", ""},
		{"kms.mars-north-1.amazonaws.com", "mars-north-1", ""},
	} {
		got, ok := awsKMSHost(tt.host, tt.region)
		if ok != (tt.partition != "") || got != tt.partition {
			t.Errorf("awsKMSHost(%q, %q) = %q, %v; want %q", tt.host, tt.region, got, ok, tt.partition)
		}
	}
}

func TestEndpointPolicyCheck(t *testing.T) {
	mustURL := func(s string) *url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tt := range []struct {
		name, allowed, req, as string
	}{
		{"aws https", "", "https://kms.us-east-1.amazonaws.com/", kmsimport.AllowedAWS},
		{"aws https port 443", "", "https://kms.us-east-1.amazonaws.com:443/", kmsimport.AllowedAWS},
		{"aws over http", "", "http://kms.us-east-1.amazonaws.com/", ""},
		{"aws other port", "", "https://kms.us-east-1.amazonaws.com:8443/", ""},
		{"aws other region", "", "https://kms.eu-west-1.amazonaws.com/", ""},
		{"credentials in url", "", "https://u:p@kms.us-east-1.amazonaws.com/", ""},
		{"loopback without opt-in", "", "http://127.0.0.1:4566/", ""},
		{"loopback with opt-in", "http://127.0.0.1:4566", "http://127.0.0.1:4566/", kmsimport.AllowedOptIn},
		{"localhost with opt-in", "http://localhost:4566", "http://LOCALHOST:4566/", kmsimport.AllowedOptIn},
		{"ipv6 loopback with opt-in", "http://[::1]:4566", "http://[::1]:4566/", kmsimport.AllowedOptIn},
		{"opt-in other port", "http://127.0.0.1:4566", "http://127.0.0.1:4567/", ""},
		{"opt-in other scheme", "https://127.0.0.1:4566", "http://127.0.0.1:4566/", ""},
		{"http off loopback even with opt-in", "http://10.0.0.5:4566", "http://10.0.0.5:4566/", ""},
		{"https private with opt-in", "https://kms.internal.example", "https://kms.internal.example:443/", kmsimport.AllowedOptIn},
		{"https private without opt-in", "", "https://kms.internal.example/", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := kmsimport.EndpointPolicy{Genuine: AWSKMS("us-east-1"), Named: "--endpoint-url", OptIn: "--allow-endpoint"}
			if tt.allowed != "" {
				p.Allowed = mustURL(tt.allowed)
			}
			as, _, err := p.Check(mustURL(tt.req))
			if as != tt.as {
				t.Fatalf("check(%s) = %q, %v; want %q", tt.req, as, err, tt.as)
			}
			var ee *kmsimport.EndpointError
			if tt.as == "" && (!errors.As(err, &ee) || !errors.Is(err, kmsimport.ErrInvalidInput)) {
				t.Fatalf("refusal is %T %v, want an *EndpointError that is ErrInvalidInput", err, err)
			}
		})
	}
}
