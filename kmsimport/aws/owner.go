package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	tagging "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi"
	tagtypes "github.com/aws/aws-sdk-go-v2/service/resourcegroupstaggingapi/types"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// TagSearch is the Resource Groups Tagging API's search by tag, which
// finds the KMS keys carrying given tags at a cost that grows with what it
// finds, not with the account. *resourcegroupstaggingapi.Client satisfies
// it.
type TagSearch interface {
	GetResources(context.Context, *tagging.GetResourcesInput, ...func(*tagging.Options)) (*tagging.GetResourcesOutput, error)
}

// owner is the ownership authority of the run: the Importer's own, or
// one over its journal and token that adopts nothing.
func (r *run) owner() *ownership.Authority {
	if r.im.Owner != nil {
		return r.im.Owner
	}
	return &ownership.Authority{TokenSerial: r.res.HSM.Token.Serial, Journal: r.im.Journal, Command: r.command()}
}

// kmsView is ownership's read-only view of one KMS Region: one key at a
// time, and the tag search.
type kmsView struct {
	api  API
	tags TagSearch
}

func (r *run) view() ownership.KMSView { return NewKMSView(r.im.KMS, r.im.Tagging) }

// NewKMSView is the view ownership decisions read KMS through. tags nil
// means api's own tag search, when it has one (*Client has).
func NewKMSView(api API, tags TagSearch) ownership.KMSView {
	if tags == nil {
		if ts, ok := api.(interface{ TagSearch() TagSearch }); ok {
			tags = ts.TagSearch()
		}
	}
	return kmsView{api: api, tags: tags}
}

func (v kmsView) Key(ctx context.Context, id string) (*ownership.KMSKey, error) {
	out, err := v.api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		var ke *kmsimport.KMSError
		if e := explain("DescribeKey", err); errors.As(e, &ke) && ke.Code == "NotFoundException" {
			return nil, nil
		}
		return nil, explain("DescribeKey", err)
	}
	md := out.KeyMetadata
	kid := aws.ToString(md.KeyId)
	tags, err := (&run{im: &Importer{KMS: v.api}}).listTags(ctx, kid)
	if err != nil {
		return nil, err
	}
	return &ownership.KMSKey{ID: kid, Usable: md.KeyState != types.KeyStatePendingDeletion && md.Origin == types.OriginTypeExternal, Tags: tags}, nil
}

func (v kmsView) ByAttempt(ctx context.Context, attempt string) (string, error) {
	if v.tags != nil {
		ids, err := v.ByTags(ctx, map[string]string{TagAttempt: attempt})
		if err == nil && len(ids) > 0 {
			return ids[0], nil
		}
	}
	return FindKeyByAttempt(ctx, v.api, attempt)
}

func (v kmsView) ByTags(ctx context.Context, tags map[string]string) ([]string, error) {
	if v.tags == nil {
		return nil, ownership.ErrNoTagSearch
	}
	in := &tagging.GetResourcesInput{ResourceTypeFilters: []string{"kms:key"}}
	for k, val := range tags {
		in.TagFilters = append(in.TagFilters, tagtypes.TagFilter{Key: aws.String(k), Values: []string{val}})
	}
	var ids []string
	p := tagging.NewGetResourcesPaginator(v.tags, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, tagSearchError(err)
		}
		for _, m := range page.ResourceTagMappingList {
			arn := aws.ToString(m.ResourceARN)
			if i := strings.LastIndex(arn, ":key/"); i >= 0 {
				ids = append(ids, arn[i+len(":key/"):])
			}
		}
	}
	return ids, nil
}

// tagSearchError is ErrNoTagSearch when the endpoint does not offer the
// Resource Groups Tagging API (an emulator that serves KMS only), else the
// failure, with the permission to grant when it was refused.
func tagSearchError(err error) error {
	var ae smithy.APIError
	var de *smithy.DeserializationError
	var re interface{ HTTPStatusCode() int }
	switch {
	case errors.As(err, &de),
		errors.As(err, &re) && re.HTTPStatusCode() == 404,
		errors.As(err, &ae) && (ae.ErrorCode() == "UnknownOperationException" || ae.ErrorCode() == "" || ae.ErrorCode() == "UnknownError"):
		return ownership.ErrNoTagSearch
	case errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "AccessDenied"):
		return fmt.Errorf("%w: kmsbridge finds the KMS keys linked to an HSM key with the Resource Groups Tagging API: grant tag:GetResources to these credentials", explain("GetResources", err))
	}
	return explain("GetResources", err)
}
