package gcpemu

import (
	"context"
	"sort"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/protobuf/proto"
)

// ListKeyRings lists a location's key rings, by name. Pagination is not
// emulated: every ring comes in one page, with total_size ([proto]).
func (s *Server) ListKeyRings(_ context.Context, req *kmspb.ListKeyRingsRequest) (*kmspb.ListKeyRingsResponse, error) {
	if err := checkLocation(req.GetParent()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &kmspb.ListKeyRingsResponse{}
	for name, r := range s.rings {
		if ringRE.FindStringSubmatch(name)[1] == req.GetParent() {
			out.KeyRings = append(out.KeyRings, proto.Clone(r).(*kmspb.KeyRing))
		}
	}
	sort.Slice(out.KeyRings, func(a, b int) bool { return out.KeyRings[a].Name < out.KeyRings[b].Name })
	out.TotalSize = int32(len(out.KeyRings))
	return out, nil
}

// ListCryptoKeys lists a key ring's keys in creation order, each with its
// primary version as GetCryptoKey returns it.
func (s *Server) ListCryptoKeys(_ context.Context, req *kmspb.ListCryptoKeysRequest) (*kmspb.ListCryptoKeysResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.ring(req.GetParent()); err != nil {
		return nil, err
	}
	out := &kmspb.ListCryptoKeysResponse{}
	for _, name := range s.ordering {
		if keyRE.FindStringSubmatch(name)[1] != req.GetParent() {
			continue
		}
		k := s.keys[name]
		for _, v := range k.versions {
			s.advance(k, v)
		}
		out.CryptoKeys = append(out.CryptoKeys, s.keyPB(k))
	}
	out.TotalSize = int32(len(out.CryptoKeys))
	return out, nil
}
