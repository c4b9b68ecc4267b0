package kmsemu

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
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

// The AWS SDK for Go's Resource Groups Tagging API client speaks the
// Smithy RPC v2 CBOR protocol: POST /service/<service>/operation/<op>,
// Smithy-Protocol: rpc-v2-cbor, CBOR bodies, errors as a CBOR map with
// __type and message. The emulator turns such a request into the JSON of
// the same shapes and answers in CBOR.
const (
	cborGetResourcesPath = "/service/ResourceGroupsTaggingAPI_20170126/operation/GetResources"
	cborContent          = "application/cbor"
)

// serveCBOR answers an RPC v2 CBOR request; false when r is not one.
func (s *Server) serveCBOR(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/service/") {
		return false
	}
	start := time.Now()
	c := &call{op: "tagging:GetResources", regionName: requestRegion(r)}
	reply := func(status int, v cbor.Value, aerr *apiError) {
		w.Header().Set("Content-Type", cborContent)
		w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
		w.Header().Set("X-Amzn-RequestId", newUUID())
		w.WriteHeader(status)
		_, _ = w.Write(cbor.Encode(v))
		outcome := "ok"
		if aerr != nil {
			outcome = aerr.code
		}
		s.logRequest(c, start, outcome, aerr)
	}
	fail := func(aerr *apiError) {
		reply(aerr.httpStatus(), cbor.Map{"__type": cbor.String(aerr.code), "message": cbor.String(aerr.msg)}, aerr)
	}
	if r.Method != http.MethodPost || r.URL.Path != cborGetResourcesPath || r.Header.Get("Smithy-Protocol") != "rpc-v2-cbor" {
		fail(errorf("UnknownOperationException", "kms-emulator serves only POST %s with Smithy-Protocol rpc-v2-cbor under /service/", cborGetResourcesPath))
		return true
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil || len(body) > maxRequestBody {
		fail(errorf("SerializationException", "cannot read a request body of at most %d bytes", maxRequestBody))
		return true
	}
	in := []byte("{}")
	if len(body) > 0 {
		v, err := cbor.Decode(body)
		if err != nil {
			fail(errorf("SerializationException", "the request body is not CBOR: %v", err))
			return true
		}
		if in, err = json.Marshal(fromCBOR(v)); err != nil {
			fail(errorf("SerializationException", "the request body has values JSON cannot hold: %v", err))
			return true
		}
	}
	resp, aerr := s.dispatch(c, c.op, in)
	if aerr != nil {
		fail(aerr)
		return true
	}
	out, err := json.Marshal(resp)
	if err != nil {
		panic("kmsemu: marshal response: " + err.Error())
	}
	var generic any
	_ = json.Unmarshal(out, &generic)
	reply(http.StatusOK, toCBOR(generic), nil)
	return true
}

// fromCBOR is v as the values encoding/json marshals.
func fromCBOR(v cbor.Value) any {
	switch v := v.(type) {
	case cbor.Map:
		m := map[string]any{}
		for k, e := range v {
			m[k] = fromCBOR(e)
		}
		return m
	case cbor.List:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = fromCBOR(e)
		}
		return l
	case cbor.String:
		return string(v)
	case cbor.Uint:
		return uint64(v)
	case cbor.NegInt:
		return -int64(v)
	case cbor.Bool:
		return bool(v)
	case cbor.Float32:
		return float32(v)
	case cbor.Float64:
		return float64(v)
	}
	return nil
}

// toCBOR is v, as encoding/json unmarshals into any, in CBOR; nulls are
// left out of maps, as the SDK expects absent members to be.
func toCBOR(v any) cbor.Value {
	switch v := v.(type) {
	case map[string]any:
		m := cbor.Map{}
		for k, e := range v {
			if e == nil {
				continue
			}
			if s, ok := e.(string); ok && s == "" {
				continue
			}
			m[k] = toCBOR(e)
		}
		return m
	case []any:
		l := make(cbor.List, len(v))
		for i, e := range v {
			l[i] = toCBOR(e)
		}
		return l
	case string:
		return cbor.String(v)
	case float64:
		if v >= 0 && v == float64(uint64(v)) {
			return cbor.Uint(uint64(v))
		}
		return cbor.Float64(v)
	case bool:
		return cbor.Bool(v)
	}
	return &cbor.Nil{}
}
