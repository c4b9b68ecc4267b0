package kmsemu

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
)

// TestGetResources drives the search by tag with the AWS SDK's own
// Resource Groups Tagging API client: filters ANDed, values ORed, a
// filter without values matching any value, pages, and the Region.
func TestGetResources(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tc := tagging.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""), Retryer: func() aws.Retryer { return aws.NopRetryer{} }},
		func(o *tagging.Options) { o.BaseEndpoint = aws.String(e.url) })
	mk := func(tags map[string]string) string {
		in := &kms.CreateKeyInput{Origin: types.OriginTypeExternal}
		for k, v := range tags {
			in.Tags = append(in.Tags, types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)})
		}
		out, err := e.kms.CreateKey(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.KeyMetadata.Arn)
	}
	a := mk(map[string]string{"hsm": "01", "tok": "s1"})
	b := mk(map[string]string{"hsm": "02", "tok": "s1"})
	mk(map[string]string{"hsm": "01", "tok": "s2"})
	mk(nil)
	for i := 0; i < 120; i++ {
		mk(map[string]string{"noise": fmt.Sprint(i)})
	}
	search := func(t *testing.T, filters ...tagtypes.TagFilter) []string {
		t.Helper()
		var arns []string
		p := tagging.NewGetResourcesPaginator(tc, &tagging.GetResourcesInput{TagFilters: filters, ResourceTypeFilters: []string{"kms:key"}, ResourcesPerPage: aws.Int32(7)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page.ResourceTagMappingList {
				arns = append(arns, aws.ToString(m.ResourceARN))
			}
		}
		return arns
	}
	f := func(k string, v ...string) tagtypes.TagFilter {
		return tagtypes.TagFilter{Key: aws.String(k), Values: v}
	}
	if got := search(t, f("hsm", "01"), f("tok", "s1")); !slices.Equal(got, []string{a}) {
		t.Errorf("hsm=01 and tok=s1: %v, want [%s]", got, a)
	}
	if got := search(t, f("hsm", "01", "02"), f("tok", "s1")); !slices.Equal(got, []string{a, b}) {
		t.Errorf("hsm=01|02 and tok=s1: %v, want [%s %s]", got, a, b)
	}
	if got := search(t, f("noise")); len(got) != 120 {
		t.Errorf("any value of noise: %d keys, want 120 (across pages)", len(got))
	}
	other := tagging.NewFromConfig(aws.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")},
		func(o *tagging.Options) { o.BaseEndpoint = aws.String(e.url) })
	out, err := other.GetResources(ctx, &tagging.GetResourcesInput{TagFilters: []tagtypes.TagFilter{f("hsm", "01")}})
	if err != nil || len(out.ResourceTagMappingList) != 0 {
		t.Errorf("another Region: %v, %v; want none", out, err)
	}
	_, err = tc.GetResources(ctx, &tagging.GetResourcesInput{ResourcesPerPage: aws.Int32(101)})
	wantErr(t, err, "InvalidParameterException")
}
