package kmsemu

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

const maxTags = 50

// validateTags checks tags as KMS does (model lengths: ValidationException;
// reserved aws: prefix, duplicates, too many: TagException) and returns
// existing updated with them. existing is not modified.
func validateTags(tags []tagEntry, existing map[string]string) (map[string]string, *apiError) {
	var v validator
	for i, t := range tags {
		f := fmt.Sprintf("tags.%d.member.", i+1)
		if v.required(f+"tagKey", t.TagKey != nil) {
			v.strLen(f+"tagKey", t.TagKey, 1, 128)
		}
		if v.required(f+"tagValue", t.TagValue != nil) {
			v.strLen(f+"tagValue", t.TagValue, 0, 256)
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	out := maps.Clone(existing)
	if out == nil {
		out = map[string]string{}
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if strings.HasPrefix(strings.ToLower(*t.TagKey), "aws:") {
			return nil, errorf("TagException", "Tag key %q: the aws: prefix is reserved for AWS", *t.TagKey)
		}
		if seen[*t.TagKey] {
			return nil, errorf("TagException", "Tag key %q appears more than once", *t.TagKey)
		}
		seen[*t.TagKey] = true
		out[*t.TagKey] = *t.TagValue
	}
	if len(out) > maxTags {
		return nil, errorf("TagException", "a KMS key can have at most %d tags; this request would give it %d", maxTags, len(out))
	}
	return out, nil
}

type tagResourceInput struct {
	KeyId *string
	Tags  []tagEntry
}

func (s *Server) tagResource(c *call, body []byte) (any, *apiError) {
	var in tagResourceInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.required("tags", in.Tags != nil)
	if err := v.err(); err != nil {
		return nil, err
	}
	k, aerr := s.liveKey(c, in.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	tags, aerr := validateTags(in.Tags, k.tags)
	if aerr != nil {
		return nil, aerr
	}
	k.tags = tags
	return empty{}, nil
}

type untagResourceInput struct {
	KeyId   *string
	TagKeys []string
}

func (s *Server) untagResource(c *call, body []byte) (any, *apiError) {
	var in untagResourceInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.required("tagKeys", in.TagKeys != nil)
	for i := range in.TagKeys {
		v.strLen(fmt.Sprintf("tagKeys.%d.member", i+1), &in.TagKeys[i], 1, 128)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	k, aerr := s.liveKey(c, in.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	for _, t := range in.TagKeys {
		delete(k.tags, t)
	}
	return empty{}, nil
}

type tagOutputEntry struct {
	TagKey   string
	TagValue string
}

type listResourceTagsOutput struct {
	Tags       []tagOutputEntry
	NextMarker *string `json:",omitempty"`
	Truncated  bool
}

// listResourceTags lists a key's tags in key order.
func (s *Server) listResourceTags(c *call, body []byte) (any, *apiError) {
	var in listInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	names := slices.Sorted(maps.Keys(k.tags))
	start, end, next, truncated, aerr := page(len(names), in.Limit, in.Marker, 50, 50)
	if aerr != nil {
		return nil, aerr
	}
	out := listResourceTagsOutput{Tags: []tagOutputEntry{}, NextMarker: next, Truncated: truncated}
	for _, n := range names[start:end] {
		out.Tags = append(out.Tags, tagOutputEntry{TagKey: n, TagValue: k.tags[n]})
	}
	return out, nil
}
