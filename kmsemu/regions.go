package kmsemu

import (
	"crypto/rsa"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// regionState is everything one AWS Region of the emulated account holds:
// its keys, aliases and import tokens (and so its wrapping keys). Guarded
// by Server.mu. Regions are made on first use and never removed.
type regionState struct {
	name      string
	accountID string
	keys      map[string]*key // by key ID (UUID or mrk-...)
	keyOrder  []string        // creation order, for ListKeys
	aliases   map[string]*alias
	tokens    map[string]*importParams // by string(ImportToken)
	// pairs are the wrapping key pairs GetParametersForImport handed out
	// in this Region, given back to a test key cache when the Region is
	// reset (KmsBridgeResetRegion).
	pairs []*rsa.PrivateKey
}

func newRegionState(name, accountID string) *regionState {
	return &regionState{
		name:      name,
		accountID: accountID,
		keys:      map[string]*key{},
		aliases:   map[string]*alias{},
		tokens:    map[string]*importParams{},
	}
}

func (r *regionState) keyARN(id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", r.name, r.accountID, id)
}

func (r *regionState) aliasARN(name string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", r.name, r.accountID, name)
}

// regionNameRE is what the emulator takes for a Region name.
var regionNameRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// requestRegion is the Region a request is for: the Region of its SigV4
// credential scope (Authorization: AWS4-HMAC-SHA256
// Credential=AKID/DATE/REGION/kms/aws4_request, ...), as AWS routes it, or
// "" when the request is not signed that way. The signature itself is not
// checked.
func requestRegion(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 || parts[3] != "kms" && parts[3] != "tagging" || !regionNameRE.MatchString(parts[2]) {
		return ""
	}
	return parts[2]
}

// region returns the state of Region name, making it on first use; "" is
// the default Region (Options.Region). Callers hold s.mu.
func (s *Server) region(name string) *regionState {
	if name == "" {
		name = s.defRegion
	}
	r, ok := s.regions[name]
	if !ok {
		r = newRegionState(name, s.accountID)
		s.regions[name] = r
	}
	return r
}

// regionNames lists the Regions in use, sorted.
func (s *Server) regionNames() []string {
	var names []string
	for n := range s.regions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
