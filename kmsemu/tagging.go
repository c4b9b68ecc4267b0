package kmsemu

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The Resource Groups Tagging API's GetResources, for the KMS keys of the
// Region only: what kmsbridge's ownership authority asks to find the keys
// carrying given tags without reading every key's tags. The wire format
// (JSON 1.1, X-Amz-Target ResourceGroupsTaggingAPI_20170126.GetResources)
// and the rules are the API reference's; docs/kms-emulator.md lists them.
const taggingTargetPrefix = "ResourceGroupsTaggingAPI_20170126."

type tagFilter struct {
	Key    *string
	Values []string
}

type getResourcesInput struct {
	PaginationToken     *string
	TagFilters          []tagFilter
	ResourcesPerPage    *int32
	ResourceTypeFilters []string
	ResourceARNList     []string
}

type taggingTag struct {
	Key   string
	Value string
}

type resourceTagMapping struct {
	ResourceARN string
	Tags        []taggingTag
}

type getResourcesOutput struct {
	PaginationToken        string
	ResourceTagMappingList []resourceTagMapping
}

// getResources lists the Region's KMS keys whose tags pass every filter: a
// filter passes when the key has its Key with one of its Values (any value
// when Values is empty). Keys pending deletion are listed as KMS lists
// them; a key with no tags is never listed.
func (s *Server) getResources(c *call, body []byte) (any, *apiError) {
	var in getResourcesInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if len(in.TagFilters) > 50 {
		return nil, errorf("InvalidParameterException", "TagFilters: at most 50 filters")
	}
	for _, f := range in.TagFilters {
		if f.Key == nil || len(*f.Key) < 1 || len(*f.Key) > 128 {
			return nil, errorf("InvalidParameterException", "TagFilters: each filter needs a Key of 1 to 128 characters")
		}
		if len(f.Values) > 20 {
			return nil, errorf("InvalidParameterException", "TagFilters: at most 20 values per filter")
		}
	}
	if len(in.ResourceARNList) > 0 && len(in.TagFilters) > 0 {
		return nil, errorf("InvalidParameterException", "ResourceARNList cannot be combined with TagFilters")
	}
	for _, t := range in.ResourceTypeFilters {
		if t != "kms" && t != "kms:key" {
			// Only KMS keys live here; another type matches nothing.
			return getResourcesOutput{ResourceTagMappingList: []resourceTagMapping{}}, nil
		}
	}
	per := int32(50)
	if in.ResourcesPerPage != nil {
		if *in.ResourcesPerPage < 1 || *in.ResourcesPerPage > 100 {
			return nil, errorf("InvalidParameterException", "ResourcesPerPage must be from 1 to 100")
		}
		per = *in.ResourcesPerPage
	}
	start := 0
	if in.PaginationToken != nil && *in.PaginationToken != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(*in.PaginationToken, "kmsemu-"))
		if err != nil || n < 0 || !strings.HasPrefix(*in.PaginationToken, "kmsemu-") {
			return nil, errorf("InvalidParameterException", "PaginationToken is not one this service returned")
		}
		start = n
	}
	arns := map[string]bool{}
	for _, a := range in.ResourceARNList {
		arns[a] = true
	}
	out := getResourcesOutput{ResourceTagMappingList: []resourceTagMapping{}}
	order := c.reg.keyOrder
	i := start
	for ; i < len(order) && int32(len(out.ResourceTagMappingList)) < per; i++ {
		k := c.reg.keys[order[i]]
		if k == nil || len(k.tags) == 0 || len(arns) > 0 && !arns[k.arn] || !matchesTagFilters(k.tags, in.TagFilters) {
			continue
		}
		m := resourceTagMapping{ResourceARN: k.arn}
		for _, name := range slices.Sorted(maps.Keys(k.tags)) {
			m.Tags = append(m.Tags, taggingTag{Key: name, Value: k.tags[name]})
		}
		out.ResourceTagMappingList = append(out.ResourceTagMappingList, m)
	}
	if i < len(order) {
		out.PaginationToken = "kmsemu-" + strconv.Itoa(i)
	}
	return out, nil
}

func matchesTagFilters(tags map[string]string, filters []tagFilter) bool {
	for _, f := range filters {
		v, ok := tags[*f.Key]
		if !ok {
			return false
		}
		if len(f.Values) == 0 {
			continue
		}
		found := false
		for _, want := range f.Values {
			found = found || want == v
		}
		if !found {
			return false
		}
	}
	return true
}
