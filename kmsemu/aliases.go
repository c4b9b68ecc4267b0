package kmsemu

import (
	"regexp"
	"sort"
	"strings"
	"time"
)

// alias is a KMS alias: a name that points at one key.
type alias struct {
	name    string
	target  string // key UUID
	created time.Time
	updated time.Time
}

var aliasNameRE = regexp.MustCompile(`^[a-zA-Z0-9:/_-]+$`)

// checkAliasName applies KMS's rules for a new alias name: the model's
// length and pattern, and the alias/ prefix (ValidationException, as
// recorded), and the reserved alias/aws/ prefix (InvalidAliasNameException).
func checkAliasName(name *string, creating bool) *apiError {
	var v validator
	if v.required("aliasName", name != nil) {
		v.strLen("aliasName", name, 1, 256)
		v.pattern("aliasName", name, aliasNameRE)
	}
	if err := v.err(); err != nil {
		return err
	}
	n := *name
	if !strings.HasPrefix(n, "alias/") || n == "alias/" {
		return errorf("ValidationException", "Alias must start with the prefix \"alias/\" followed by a name, got %q", n)
	}
	if creating && strings.HasPrefix(n, "alias/aws/") {
		return errorf("InvalidAliasNameException", "Alias %s: the alias/aws/ prefix is reserved for AWS managed keys", n)
	}
	return nil
}

type aliasInput struct {
	AliasName   *string
	TargetKeyId *string
}

// aliasTarget resolves the key an alias is to point at: a key ID or key ARN,
// not pending deletion.
func (s *Server) aliasTarget(c *call, id *string) (*key, *apiError) {
	k, aerr := s.resolveKey(c, "targetKeyId", id, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if k.pendingDeletion() {
		return nil, errorf("KMSInvalidStateException", "%s is pending deletion.", k.arn)
	}
	return k, nil
}

func (s *Server) createAlias(c *call, body []byte) (any, *apiError) {
	var in aliasInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if aerr := checkAliasName(in.AliasName, true); aerr != nil {
		return nil, aerr
	}
	k, aerr := s.aliasTarget(c, in.TargetKeyId)
	if aerr != nil {
		return nil, aerr
	}
	name := *in.AliasName
	if _, ok := c.reg.aliases[name]; ok {
		return nil, errorf("AlreadyExistsException", "An alias with the name %s already exists", c.reg.aliasARN(name))
	}
	now := s.now()
	c.reg.aliases[name] = &alias{name: name, target: k.id, created: now, updated: now}
	return empty{}, nil
}

// existingAlias decodes a request that names an alias which must exist
// (UpdateAlias, DeleteAlias) and finds that alias.
func existingAlias(c *call, body []byte) (aliasInput, *alias, *apiError) {
	var in aliasInput
	if err := decode(body, &in); err != nil {
		return in, nil, err
	}
	if aerr := checkAliasName(in.AliasName, false); aerr != nil {
		return in, nil, aerr
	}
	a, ok := c.reg.aliases[*in.AliasName]
	if !ok {
		return in, nil, errorf("NotFoundException", "Alias %s is not found.", c.reg.aliasARN(*in.AliasName))
	}
	return in, a, nil
}

func (s *Server) updateAlias(c *call, body []byte) (any, *apiError) {
	in, a, aerr := existingAlias(c, body)
	if aerr != nil {
		return nil, aerr
	}
	k, aerr := s.aliasTarget(c, in.TargetKeyId)
	if aerr != nil {
		return nil, aerr
	}
	// The new target must be of the same key type (symmetric, asymmetric or
	// HMAC) and key usage as the old one (API UpdateAlias; recorded).
	if old, ok := c.reg.keys[a.target]; ok && (keyType(old) != keyType(k) || old.usage != k.usage) {
		return nil, errorf("ValidationException", "Alias %s points to %s (%s %s, KeyUsage %s); its new target %s is %s %s key with KeyUsage %s: UpdateAlias needs the same key type and key usage",
			a.name, old.arn, keyType(old), old.spec, old.usage, k.arn, keyType(k), k.spec, k.usage)
	}
	a.target = k.id
	a.updated = s.now()
	return empty{}, nil
}

func (s *Server) deleteAlias(c *call, body []byte) (any, *apiError) {
	_, a, aerr := existingAlias(c, body)
	if aerr != nil {
		return nil, aerr
	}
	c.keyID = a.target
	delete(c.reg.aliases, a.name)
	return empty{}, nil
}

type aliasListEntry struct {
	AliasName       string
	AliasArn        string
	TargetKeyId     string
	CreationDate    epochTime
	LastUpdatedDate epochTime
}

type listAliasesOutput struct {
	Aliases    []aliasListEntry
	NextMarker *string `json:",omitempty"`
	Truncated  bool
}

// listAliases lists the aliases in name order, optionally only those of one
// key (key ID or key ARN). Unlike KMS it lists no AWS managed aliases.
func (s *Server) listAliases(c *call, body []byte) (any, *apiError) {
	var in listInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var only *key
	if in.KeyId != nil {
		k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
		if aerr != nil {
			return nil, aerr
		}
		only = k
	}
	var all []*alias
	for _, a := range c.reg.aliases {
		if only == nil || a.target == only.id {
			all = append(all, a)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })
	start, end, next, truncated, aerr := page(len(all), in.Limit, in.Marker, 50, 100)
	if aerr != nil {
		return nil, aerr
	}
	out := listAliasesOutput{Aliases: []aliasListEntry{}, NextMarker: next, Truncated: truncated}
	for _, a := range all[start:end] {
		out.Aliases = append(out.Aliases, aliasListEntry{
			AliasName:       a.name,
			AliasArn:        c.reg.aliasARN(a.name),
			TargetKeyId:     a.target,
			CreationDate:    epochTime{a.created},
			LastUpdatedDate: epochTime{a.updated},
		})
	}
	return out, nil
}

// keyType is what UpdateAlias compares: symmetric, asymmetric or HMAC.
func keyType(k *key) string {
	switch {
	case k.ks().asymmetric():
		return "asymmetric"
	case k.ks().kind == kindHMAC:
		return "HMAC"
	default:
		return "symmetric"
	}
}
