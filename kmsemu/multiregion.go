package kmsemu

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Multi-Region keys: related keys share a key ID (mrk-...) across Regions of
// one Server. The primary's Region is recorded on every related key;
// replicas are the other keys with the same ID. See doc.go, "Multi-Region
// keys".

const (
	mrkTypePrimary = "PRIMARY"
	mrkTypeReplica = "REPLICA"
	// defaultReplicaPolicy is what ReplicateKey reports as ReplicaPolicy when
	// none is given; policies are accepted and ignored.
	defaultReplicaPolicy = `{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"}]}`
)

var mrkIDRE = regexp.MustCompile(`^mrk-[0-9a-f]{32}$`)

// newMRKID returns a multi-Region key ID: mrk- and 32 hex digits.
func newMRKID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("kmsemu: crypto/rand failed: " + err.Error())
	}
	return "mrk-" + hex.EncodeToString(b[:])
}

// isPrimary and isReplica say what a multi-Region key is.
func (k *key) isPrimary() bool { return k.multiRegion && k.primaryRegion == k.region }
func (k *key) isReplica() bool { return k.multiRegion && k.primaryRegion != k.region }

// related returns the other keys of k's multi-Region set, in Region order.
func (s *Server) related(k *key) []*key {
	if !k.multiRegion {
		return nil
	}
	var out []*key
	for _, name := range s.regionNames() {
		if o, ok := s.regions[name].keys[k.id]; ok && o != k {
			out = append(out, o)
		}
	}
	return out
}

// primaryOf returns the primary key of k's set (k itself if primary), or
// nil if it was deleted.
func (s *Server) primaryOf(k *key) *key {
	if k.isPrimary() {
		return k
	}
	if r, ok := s.regions[k.primaryRegion]; ok {
		return r.keys[k.id]
	}
	return nil
}

// replicasOf returns the replicas of primary p.
func (s *Server) replicasOf(p *key) []*key {
	var out []*key
	for _, o := range s.related(p) {
		if o.isReplica() {
			out = append(out, o)
		}
	}
	return out
}

type multiRegionKey struct {
	Arn    string
	Region string
}

type multiRegionConfiguration struct {
	MultiRegionKeyType string
	PrimaryKey         *multiRegionKey `json:",omitempty"`
	ReplicaKeys        []multiRegionKey
}

// multiRegionConfig is DescribeKey's MultiRegionConfiguration of k.
func (s *Server) multiRegionConfig(k *key) *multiRegionConfiguration {
	if !k.multiRegion {
		return nil
	}
	cfg := &multiRegionConfiguration{MultiRegionKeyType: mrkTypeReplica, ReplicaKeys: []multiRegionKey{}}
	if k.isPrimary() {
		cfg.MultiRegionKeyType = mrkTypePrimary
	}
	all := append([]*key{k}, s.related(k)...)
	slices.SortFunc(all, func(a, b *key) int {
		switch {
		case a.region < b.region:
			return -1
		case a.region > b.region:
			return 1
		}
		return 0
	})
	for _, o := range all {
		if o.region == k.primaryRegion {
			cfg.PrimaryKey = &multiRegionKey{Arn: o.arn, Region: o.region}
		} else {
			cfg.ReplicaKeys = append(cfg.ReplicaKeys, multiRegionKey{Arn: o.arn, Region: o.region})
		}
	}
	if cfg.PrimaryKey == nil {
		// The primary was deleted: report where it was.
		cfg.PrimaryKey = &multiRegionKey{Arn: s.region(k.primaryRegion).keyARN(k.id), Region: k.primaryRegion}
	}
	return cfg
}

type replicateKeyInput struct {
	KeyId                          *string
	ReplicaRegion                  *string
	Description                    *string
	Policy                         *string
	BypassPolicyLockoutSafetyCheck *bool
	Tags                           []tagEntry
}

type replicateKeyOutput struct {
	ReplicaKeyMetadata keyMetadata
	ReplicaPolicy      string
	ReplicaTags        []tagEntry
}

// replicateKey creates a replica of a multi-Region primary key in another
// Region: same key ID, spec, usage and origin. A replica of an EXTERNAL key
// starts PendingImport with no material imported; one of an AWS_KMS key
// shares its material and starts Enabled.
func (s *Server) replicateKey(c *call, body []byte) (any, *apiError) {
	var in replicateKeyInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	if v.required("replicaRegion", in.ReplicaRegion != nil) {
		v.strLen("replicaRegion", in.ReplicaRegion, 1, 32)
		v.pattern("replicaRegion", in.ReplicaRegion, regionNameRE)
	}
	v.strLen("description", in.Description, 0, 8192)
	v.strLen("policy", in.Policy, 1, 131072)
	if err := v.err(); err != nil {
		return nil, err
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	switch {
	case !k.multiRegion:
		return nil, errorf("UnsupportedOperationException", "%s is not a multi-Region key: only multi-Region primary keys can be replicated", k.arn)
	case k.isReplica():
		return nil, errorf("UnsupportedOperationException", "%s is not a multi-region primary key.", k.arn)
	case k.pendingDeletion():
		return nil, invalidState(k, c.op)
	}
	target := *in.ReplicaRegion
	if target == k.region {
		return nil, errorf("ValidationException", "ReplicaRegion %s is the Region of the primary key %s", target, k.arn)
	}
	r := s.region(target)
	if _, ok := r.keys[k.id]; ok {
		return nil, errorf("AlreadyExistsException", "A replica of %s already exists in %s", k.arn, target)
	}
	tags, aerr := validateTags(in.Tags, nil)
	if aerr != nil {
		return nil, aerr
	}
	rep := &key{
		id:            k.id,
		arn:           r.keyARN(k.id),
		region:        target,
		created:       s.now(),
		origin:        k.origin,
		spec:          k.spec,
		usage:         k.usage,
		tags:          tags,
		multiRegion:   true,
		primaryRegion: k.primaryRegion,
	}
	if in.Description != nil {
		rep.description = *in.Description
	}
	for _, m := range k.mats {
		rep.mats = append(rep.mats, shadowOf(m, k.origin == originAWSKMS))
	}
	if k.origin == originAWSKMS {
		rep.enabled = true
	}
	if s.replicaCreating > 0 {
		// KMS creates the replica asynchronously [API ReplicateKey].
		rep.creating, rep.creatingUntil = true, s.now().Add(s.replicaCreating)
	}
	rep.unknownUntil = s.now().Add(s.freshUnknown)
	r.keys[rep.id] = rep
	r.keyOrder = append(r.keyOrder, rep.id)
	s.syncPendingState(k)
	policy := in.Policy
	if policy == nil {
		p := defaultPolicy(s.accountID)
		policy = &p
	}
	out := replicateKeyOutput{ReplicaKeyMetadata: s.metadata(rep), ReplicaPolicy: *policy, ReplicaTags: []tagEntry{}}
	names := slices.Sorted(maps.Keys(tags))
	for _, name := range names {
		out.ReplicaTags = append(out.ReplicaTags, tagEntry{TagKey: &name, TagValue: aws.String(tags[name])})
	}
	return out, nil
}

func defaultPolicy(account string) string {
	return fmt.Sprintf(defaultReplicaPolicy, account)
}

// shadowOf is a replica's copy of a primary's material: the same id and
// state, imported only if the material is KMS's own (AWS_KMS), which KMS
// shares with replicas; imported material must be imported into each
// replica.
func shadowOf(m *keyMat, shared bool) *keyMat {
	return &keyMat{
		id: m.id, secret: m.secret, priv: m.priv, state: m.state,
		imported: shared && m.imported, rotationDate: m.rotationDate, rotationType: m.rotationType,
	}
}

type updatePrimaryRegionInput struct {
	KeyId         *string
	PrimaryRegion *string
}

// updatePrimaryRegion makes the replica in PrimaryRegion the primary key and
// the primary a replica, at once.
func (s *Server) updatePrimaryRegion(c *call, body []byte) (any, *apiError) {
	var in updatePrimaryRegionInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	if v.required("primaryRegion", in.PrimaryRegion != nil) {
		v.pattern("primaryRegion", in.PrimaryRegion, regionNameRE)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if !k.isPrimary() {
		return nil, errorf("UnsupportedOperationException", "%s is not a multi-Region primary key: call UpdatePrimaryRegion on the primary key", k.arn)
	}
	if *in.PrimaryRegion == k.region {
		return empty{}, nil
	}
	r, ok := s.regions[*in.PrimaryRegion]
	if !ok || r.keys[k.id] == nil {
		return nil, errorf("NotFoundException", "%s has no replica in %s: replicate it there first (ReplicateKey)", k.arn, *in.PrimaryRegion)
	}
	if !k.rotateAt.IsZero() {
		return nil, errorf("ConflictException", "An on-demand rotation of %s is in progress", k.arn)
	}
	for _, o := range append([]*key{k}, s.related(k)...) {
		o.primaryRegion = *in.PrimaryRegion
	}
	return empty{}, nil
}

// importAllowed refuses imports a multi-Region replica does not take: new
// material goes into the primary key only.
func (s *Server) importAllowed(k *key, importType string) *apiError {
	if k.isReplica() && importType == importTypeNew && len(k.mats) > 0 {
		return errorf("UnsupportedOperationException", "%s is a multi-Region replica key: new key material can be imported only into the primary key (in %s); import the same material here with ImportType EXISTING_KEY_MATERIAL", k.arn, k.primaryRegion)
	}
	return nil
}

// replicaImportTarget finds, for an import into replica k, the material of
// the primary it must be: any other material is IncorrectKeyMaterialException.
func (s *Server) replicaImportTarget(k *key, material []byte) (*keyMat, *apiError) {
	m := k.matBySecret(material)
	if m == nil {
		return nil, errorf("IncorrectKeyMaterialException", "%s is a multi-Region replica key: it takes only key material imported into its primary key (in %s), and this is not", k.arn, k.primaryRegion)
	}
	return m, nil
}

// rotationAllowed refuses on-demand rotation of a replica key.
func (s *Server) rotationAllowed(k *key) *apiError {
	if k.isReplica() {
		return errorf("UnsupportedOperationException", "%s is a multi-Region replica key: rotate the primary key (in %s)", k.arn, k.primaryRegion)
	}
	return nil
}

// pendingStateFor is the KeyMaterialState of new material pending rotation:
// PENDING_MULTI_REGION_IMPORT_AND_ROTATION for a primary with replicas
// until each of them has the material imported.
func (s *Server) pendingStateFor(k *key, materialID string) string {
	if k.isPrimary() && len(s.replicasOf(k)) > 0 {
		return matPendingMultiRegion
	}
	return matPendingRotation
}

// onImported lets related multi-Region keys follow an import: new material
// of a primary appears, not imported, in each replica; an import into a
// replica may complete the set for material pending rotation.
func (s *Server) onImported(k *key, m *keyMat) {
	if !k.multiRegion {
		return
	}
	p := s.primaryOf(k)
	if p == nil {
		return
	}
	if k == p {
		for _, rep := range s.replicasOf(p) {
			if rep.matByID(m.id) == nil {
				if m.pending() {
					rep.mats = slices.DeleteFunc(rep.mats, func(o *keyMat) bool { return o.pending() })
				}
				rep.mats = append(rep.mats, shadowOf(m, false))
			}
		}
	}
	s.syncPendingState(p)
}

// onMaterialDeleted: deleting the pending material of a primary deletes it
// from every replica too.
func (s *Server) onMaterialDeleted(k *key, m *keyMat) {
	if !k.isPrimary() {
		if p := s.primaryOf(k); p != nil {
			s.syncPendingState(p)
		}
		return
	}
	if m.pending() {
		for _, rep := range s.replicasOf(k) {
			if o := rep.matByID(m.id); o != nil {
				o.unimport()
			}
		}
	}
	s.syncPendingState(k)
}

// syncPendingState sets the state of the primary's material pending
// rotation, and of the replicas' copies: PENDING_ROTATION once every
// replica has it imported, else PENDING_MULTI_REGION_IMPORT_AND_ROTATION.
func (s *Server) syncPendingState(p *key) {
	pm := p.pendingMat()
	if pm == nil || !p.isPrimary() {
		return
	}
	state := matPendingRotation
	reps := s.replicasOf(p)
	for _, rep := range reps {
		if o := rep.matByID(pm.id); o == nil || !o.imported {
			state = matPendingMultiRegion
		}
	}
	pm.state = state
	for _, rep := range reps {
		if o := rep.matByID(pm.id); o != nil {
			o.state = state
		}
	}
}

// onRotationCompleted lets replicas follow their primary's rotation: their
// copies take the same states, and AWS_KMS material appears in them.
func (s *Server) onRotationCompleted(k *key, m *keyMat, at time.Time) {
	if !k.isPrimary() {
		return
	}
	for _, rep := range s.replicasOf(k) {
		if rep.matByID(m.id) == nil {
			rep.mats = append(rep.mats, shadowOf(m, k.origin == originAWSKMS))
		}
		for _, o := range rep.mats {
			if pm := k.matByID(o.id); pm != nil {
				o.state, o.rotationDate, o.rotationType = pm.state, pm.rotationDate, pm.rotationType
			}
		}
	}
}
