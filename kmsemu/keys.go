package kmsemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

const (
	originAWSKMS   = "AWS_KMS"
	originExternal = "EXTERNAL"

	specSymmetric   = "SYMMETRIC_DEFAULT"
	usageEncDec     = "ENCRYPT_DECRYPT"
	algSymmetric    = "SYMMETRIC_DEFAULT"
	materialBytes   = 32 // SYMMETRIC_DEFAULT: AES-256
	maxKeyIDLength  = 2048
	defaultDeletion = 30

	stateEnabled         = "Enabled"
	stateDisabled        = "Disabled"
	statePendingImport   = "PendingImport"
	statePendingDeletion = "PendingDeletion"
	stateCreating        = "Creating"
	// statePendingReplicaDeletion: a multi-Region primary scheduled for
	// deletion while it still has replicas [API ScheduleKeyDeletion].
	statePendingReplicaDeletion = "PendingReplicaDeletion"

	expirationExpires      = "KEY_MATERIAL_EXPIRES"
	expirationNeverExpires = "KEY_MATERIAL_DOES_NOT_EXPIRE"
)

// key is one KMS key and everything KMS remembers about it.
type key struct {
	id          string
	arn         string
	region      string // the Region that holds it
	created     time.Time
	description string
	origin      string
	spec        string
	usage       string
	tags        map[string]string

	// enabled is the EnableKey/DisableKey switch; the key is usable only if
	// it also has material and is not pending deletion.
	enabled bool
	// deletionDate is set while the key is pending deletion.
	deletionDate  time.Time
	pendingWindow int32
	// awaitingReplicas marks a primary scheduled for deletion that waits
	// for its replicas to be deleted: its waiting period (deletionDate)
	// starts only when the last one is.
	awaitingReplicas bool
	// creatingUntil: a new replica is Creating until then.
	creatingUntil time.Time
	// unknownUntil: a fresh key is unknown (NotFoundException) until then.
	unknownUntil time.Time
	creating     bool

	// multiRegion marks a multi-Region key (ID mrk-...); primaryRegion is
	// the Region of its primary key, its own if it is the primary.
	multiRegion   bool
	primaryRegion string

	// mats are the key's materials in the order they were associated with
	// it: the first, one per completed on-demand rotation, and last the one
	// pending rotation, if any. Empty for an EXTERNAL key before its first
	// import. Material is remembered after it is deleted or expires, to
	// enforce KMS's same-material rule. HMAC and asymmetric keys have exactly
	// one, forever. See rotation.go.
	mats []*keyMat
	// rotateAt is when the on-demand rotation under way completes (zero when
	// none is); rotateStarted is when RotateKeyOnDemand started it.
	rotateAt      time.Time
	rotateStarted time.Time
}

// state derives KeyState the way KMS reports it.
func (k *key) state() string {
	switch {
	case k.creating:
		return stateCreating
	case k.pendingDeletion() && k.awaitingReplicas:
		return statePendingReplicaDeletion
	case k.pendingDeletion():
		return statePendingDeletion
	case !k.hasUsableMaterial():
		return statePendingImport
	case k.enabled:
		return stateEnabled
	default:
		return stateDisabled
	}
}

func (k *key) pendingDeletion() bool { return !k.deletionDate.IsZero() }

// materialIDFor derives the 64-hex KeyMaterialId of material in key keyID:
// the same pair always gives the same id on one Server.
func (s *Server) materialIDFor(keyID string, material []byte) string {
	m := hmac.New(sha256.New, s.materialSecret)
	m.Write([]byte(keyID))
	m.Write([]byte{0})
	m.Write(material)
	return hex.EncodeToString(m.Sum(nil))
}

// keyARN is the ARN of key id in the default Region.
func (s *Server) keyARN(id string) string {
	return (&regionState{name: s.defRegion, accountID: s.accountID}).keyARN(id)
}

// aliasARN is the ARN of alias name in the default Region.
func (s *Server) aliasARN(name string) string {
	return (&regionState{name: s.defRegion, accountID: s.accountID}).aliasARN(name)
}

var (
	uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// keyIDRE: a single-Region key ID (a UUID) or a multi-Region one.
	keyIDRE = regexp.MustCompile(`^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|mrk-[0-9a-fA-F]{32})$`)
)

// idForms says which ways of naming a key an operation accepts.
type idForms int

const (
	// keyIDOrARN: key ID or key ARN, as most key-management operations.
	keyIDOrARN idForms = iota
	// anyKeyRef: also alias name and alias ARN, as DescribeKey and the
	// cryptographic operations.
	anyKeyRef
)

// resolveKey finds the key that id names. Malformed ARNs are
// InvalidArnException; everything else that names no key here (unknown ids,
// other accounts or regions, aliases where the operation takes none) is
// NotFoundException, as KMS answers. It records the key in c for the log.
func (s *Server) resolveKey(c *call, field string, id *string, forms idForms) (*key, *apiError) {
	var v validator
	if v.required(field, id != nil) {
		v.strLen(field, id, 1, maxKeyIDLength)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	ref := *id
	if c.keyID == "" {
		c.keyID = ref
	}
	var uuid, aliasName string
	switch {
	case strings.HasPrefix(ref, "arn:"):
		p, aerr := s.parseARN(c, ref)
		if aerr != nil {
			return nil, aerr
		}
		if name, ok := strings.CutPrefix(p.resource, "key/"); ok {
			uuid = name
		} else {
			aliasName = p.resource
		}
	case strings.HasPrefix(ref, "alias/"):
		aliasName = ref
	default:
		uuid = ref
	}
	if aliasName != "" {
		if forms != anyKeyRef {
			return nil, errorf("NotFoundException", "Invalid keyId '%s': this operation takes a key ID or key ARN, not an alias", ref)
		}
		a, ok := c.reg.aliases[aliasName]
		if !ok {
			return nil, errorf("NotFoundException", "Alias %s is not found.", c.reg.aliasARN(aliasName))
		}
		uuid = a.target
	}
	if !keyIDRE.MatchString(uuid) {
		return nil, errorf("NotFoundException", "Invalid keyId '%s'", ref)
	}
	k, ok := c.reg.keys[strings.ToLower(uuid)]
	if ok && s.now().Before(k.unknownUntil) {
		// Eventual consistency: the key exists, but this request does not
		// see it yet (Options.FreshKeyUnknownFor).
		ok = false
	}
	if !ok {
		return nil, errorf("NotFoundException", "Key '%s' does not exist", c.reg.keyARN(strings.ToLower(uuid)))
	}
	c.keyID = k.id
	return k, nil
}

type arnParts struct {
	region, account, resource string
}

// parseARN accepts arn:PARTITION:kms:REGION:ACCOUNT:key/ID|alias/NAME.
// A well-formed ARN of another region or account is NotFoundException:
// this server holds no keys there.
func (s *Server) parseARN(c *call, ref string) (arnParts, *apiError) {
	f := strings.SplitN(ref, ":", 6)
	if len(f) != 6 || !strings.HasPrefix(f[1], "aws") || f[2] != "kms" || f[3] == "" || f[4] == "" {
		return arnParts{}, errorf("InvalidArnException", "%s is not a valid KMS ARN: expected arn:aws:kms:REGION:ACCOUNT:key/KEY-ID or ...:alias/NAME", ref)
	}
	p := arnParts{region: f[3], account: f[4], resource: f[5]}
	if !strings.HasPrefix(p.resource, "key/") && !strings.HasPrefix(p.resource, "alias/") {
		return arnParts{}, errorf("InvalidArnException", "ARN %s does not contain a valid resource: expected key/KEY-ID or alias/NAME", ref)
	}
	if p.region != c.reg.name || p.account != s.accountID {
		return arnParts{}, errorf("NotFoundException", "%s is not found: this emulator serves account %s in %s", ref, s.accountID, c.reg.name)
	}
	return p, nil
}

// deleteKey forgets k with its aliases and import parameters, as KMS does
// when a pending deletion completes. The caller fixes r.keyOrder.
func (s *Server) deleteKey(r *regionState, k *key) {
	delete(r.keys, k.id)
	for name, a := range r.aliases {
		if a.target == k.id {
			delete(r.aliases, name)
		}
	}
	for tok, p := range r.tokens {
		if p.keyID == k.id {
			delete(r.tokens, tok)
		}
	}
}

// invalidState is KMSInvalidStateException in KMS's recorded wording
// ("<key-arn> is pending import."); doing is not part of it.
func invalidState(k *key, doing string) *apiError {
	_ = doing
	return errorf("KMSInvalidStateException", "%s is %s.", k.arn, strings.ToLower(stateWords(k.state())))
}

func stateWords(state string) string {
	switch state {
	case statePendingImport:
		return "pending import"
	case statePendingDeletion:
		return "pending deletion"
	case statePendingReplicaDeletion:
		return "pending replica deletion"
	default:
		return state
	}
}

type tagEntry struct {
	TagKey   *string `json:"TagKey"`
	TagValue *string `json:"TagValue"`
}

type createKeyInput struct {
	Policy                         *string
	Description                    *string
	KeyUsage                       *string
	CustomerMasterKeySpec          *string
	KeySpec                        *string
	Origin                         *string
	CustomKeyStoreId               *string
	BypassPolicyLockoutSafetyCheck *bool
	Tags                           []tagEntry
	MultiRegion                    *bool
	XksKeyId                       *string
}

type keyMetadataOutput struct {
	KeyMetadata keyMetadata
}

// keyMetadata is KMS's KeyMetadata for the key specs the emulator has.
type keyMetadata struct {
	AWSAccountId                string
	KeyId                       string
	Arn                         string
	CreationDate                epochTime
	Enabled                     bool
	Description                 string
	KeyUsage                    string
	KeyState                    string
	DeletionDate                *epochTime `json:",omitempty"`
	ValidTo                     *epochTime `json:",omitempty"`
	Origin                      string
	ExpirationModel             string `json:",omitempty"`
	KeyManager                  string
	CustomerMasterKeySpec       string
	KeySpec                     string
	EncryptionAlgorithms        []string `json:",omitempty"`
	SigningAlgorithms           []string `json:",omitempty"`
	MacAlgorithms               []string `json:",omitempty"`
	KeyAgreementAlgorithms      []string `json:",omitempty"`
	MultiRegion                 bool
	MultiRegionConfiguration    *multiRegionConfiguration `json:",omitempty"`
	PendingDeletionWindowInDays int32                     `json:",omitempty"`
	CurrentKeyMaterialId        string                    `json:",omitempty"`
}

func (s *Server) metadata(k *key) keyMetadata {
	m := keyMetadata{
		AWSAccountId:             s.accountID,
		KeyId:                    k.id,
		Arn:                      k.arn,
		CreationDate:             epochTime{k.created},
		Enabled:                  k.state() == stateEnabled,
		Description:              k.description,
		KeyUsage:                 k.usage,
		KeyState:                 k.state(),
		Origin:                   k.origin,
		KeyManager:               "CUSTOMER",
		CustomerMasterKeySpec:    k.spec,
		KeySpec:                  k.spec,
		EncryptionAlgorithms:     k.encryptionAlgorithms(),
		SigningAlgorithms:        k.signingAlgorithms(),
		MacAlgorithms:            k.macAlgorithms(),
		KeyAgreementAlgorithms:   k.keyAgreementAlgorithms(),
		MultiRegion:              k.multiRegion,
		MultiRegionConfiguration: s.multiRegionConfig(k),
	}
	if k.pendingDeletion() && !k.awaitingReplicas {
		m.DeletionDate = newEpoch(k.deletionDate)
		m.PendingDeletionWindowInDays = k.pendingWindow
	}
	// CurrentKeyMaterialId: symmetric encryption keys only, and kept after
	// the material is deleted or expires (recorded behaviour, docs/kms-emulator.md).
	if cur := k.current(); cur != nil && k.spec == specSymmetric {
		m.CurrentKeyMaterialId = cur.id
	}
	if k.origin == originExternal {
		m.ExpirationModel, m.ValidTo = k.expiry()
	}
	return m
}

func (s *Server) createKey(c *call, body []byte) (any, *apiError) {
	var in createKeyInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.strLen("description", in.Description, 0, 8192)
	v.strLen("policy", in.Policy, 1, 131072)
	v.enum("keyUsage", in.KeyUsage, enumValues(types.KeyUsageType("").Values()))
	v.enum("keySpec", in.KeySpec, enumValues(types.KeySpec("").Values()))
	v.enum("customerMasterKeySpec", in.CustomerMasterKeySpec, enumValues(types.CustomerMasterKeySpec("").Values()))
	v.enum("origin", in.Origin, enumValues(types.OriginType("").Values()))
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.KeySpec != nil && in.CustomerMasterKeySpec != nil {
		return nil, errorf("ValidationException", "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.")
	}
	spec := specSymmetric
	if in.KeySpec != nil {
		spec = *in.KeySpec
	} else if in.CustomerMasterKeySpec != nil {
		spec = *in.CustomerMasterKeySpec
	}
	ks, usage, aerr := checkSpecUsage(spec, in.KeyUsage)
	if aerr != nil {
		return nil, aerr
	}
	origin := originAWSKMS
	if in.Origin != nil {
		origin = *in.Origin
	}
	if origin != originAWSKMS && origin != originExternal {
		return nil, notImplemented("kms-emulator doesn't support Origin %s: only AWS_KMS and EXTERNAL keys are emulated", origin)
	}
	if in.CustomKeyStoreId != nil || in.XksKeyId != nil {
		return nil, notImplemented("kms-emulator doesn't emulate custom key stores")
	}
	tags, aerr := validateTags(in.Tags, nil)
	if aerr != nil {
		return nil, aerr
	}

	multi := in.MultiRegion != nil && *in.MultiRegion
	id := newUUID()
	if multi {
		id = newMRKID()
	}
	k := &key{
		id:          id,
		arn:         c.reg.keyARN(id),
		region:      c.reg.name,
		multiRegion: multi,
		created:     s.now(),
		origin:      origin,
		spec:        spec,
		usage:       usage,
		tags:        tags,
	}
	if in.Description != nil {
		k.description = *in.Description
	}
	if multi {
		k.primaryRegion = c.reg.name
	}
	if origin == originAWSKMS {
		m, aerr := s.generate(ks)
		if aerr != nil {
			return nil, aerr
		}
		k.mats = []*keyMat{{
			id: s.materialIDFor(id, m.canonical), secret: m.canonical, priv: m.priv,
			state: matCurrent, imported: true,
		}}
		k.enabled = true
	}
	k.unknownUntil = s.now().Add(s.freshUnknown)
	c.reg.keys[id] = k
	c.reg.keyOrder = append(c.reg.keyOrder, id)
	c.keyID = id
	return keyMetadataOutput{KeyMetadata: s.metadata(k)}, nil
}

// generate makes the material of a new AWS_KMS key. Generating an RSA-4096
// key takes seconds: that is done without holding up every other request.
func (s *Server) generate(ks *keySpec) (*keyMaterial, *apiError) {
	if ks.kind == kindRSA {
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.applyClock()
		}()
	}
	m, err := generateMaterial(ks)
	if err != nil {
		return nil, errorf("KMSInternalException", "cannot generate %s key material: %v", ks.name, err)
	}
	return m, nil
}

type keyIDInput struct {
	KeyId       *string
	GrantTokens []string
}

// keyFromBody decodes a request that names only a key (keyIDInput) and
// resolves that key, accepting the given forms of reference.
func (s *Server) keyFromBody(c *call, body []byte, forms idForms) (*key, *apiError) {
	var in keyIDInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	return s.resolveKey(c, "keyId", in.KeyId, forms)
}

// liveKey resolves the key (key ID or key ARN) of a request that changes it
// and refuses a key pending deletion, as KMS does (TagResource,
// UntagResource, ScheduleKeyDeletion).
func (s *Server) liveKey(c *call, id *string) (*key, *apiError) {
	k, aerr := s.resolveKey(c, "keyId", id, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if k.pendingDeletion() {
		return nil, invalidState(k, c.op)
	}
	return k, nil
}

func (s *Server) describeKey(c *call, body []byte) (any, *apiError) {
	k, aerr := s.keyFromBody(c, body, anyKeyRef)
	if aerr != nil {
		return nil, aerr
	}
	return keyMetadataOutput{KeyMetadata: s.metadata(k)}, nil
}

type listInput struct {
	KeyId  *string
	Limit  *int32
	Marker *string
}

type keyListEntry struct {
	KeyId  string
	KeyArn string
}

type listKeysOutput struct {
	Keys       []keyListEntry
	NextMarker *string `json:",omitempty"`
	Truncated  bool
}

func (s *Server) listKeys(c *call, body []byte) (any, *apiError) {
	var in listInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	start, end, next, truncated, aerr := page(len(c.reg.keyOrder), in.Limit, in.Marker, 100, 1000)
	if aerr != nil {
		return nil, aerr
	}
	out := listKeysOutput{Keys: []keyListEntry{}, NextMarker: next, Truncated: truncated}
	for _, id := range c.reg.keyOrder[start:end] {
		if s.now().Before(c.reg.keys[id].unknownUntil) {
			continue // not listed yet (Options.FreshKeyUnknownFor)
		}
		out.Keys = append(out.Keys, keyListEntry{KeyId: id, KeyArn: c.reg.keyARN(id)})
	}
	return out, nil
}

type empty struct{}

func (s *Server) enableKey(c *call, body []byte) (any, *apiError) {
	return s.setEnabled(c, body, true)
}

func (s *Server) disableKey(c *call, body []byte) (any, *apiError) {
	return s.setEnabled(c, body, false)
}

func (s *Server) setEnabled(c *call, body []byte, enabled bool) (any, *apiError) {
	k, aerr := s.keyFromBody(c, body, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if st := k.state(); st != stateEnabled && st != stateDisabled {
		return nil, invalidState(k, c.op)
	}
	k.enabled = enabled
	return empty{}, nil
}

type scheduleKeyDeletionInput struct {
	KeyId               *string
	PendingWindowInDays *int32
}

type scheduleKeyDeletionOutput struct {
	KeyId               string
	DeletionDate        *epochTime `json:",omitempty"`
	KeyState            string
	PendingWindowInDays int32
}

func (s *Server) scheduleKeyDeletion(c *call, body []byte) (any, *apiError) {
	var in scheduleKeyDeletionInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.intRange("pendingWindowInDays", in.PendingWindowInDays, 1, 365)
	if err := v.err(); err != nil {
		return nil, err
	}
	window := int32(defaultDeletion)
	if in.PendingWindowInDays != nil {
		window = *in.PendingWindowInDays
	}
	if window < 7 || window > 30 {
		return nil, errorf("ValidationException", "PendingWindowInDays must be between 7 and 30 days, got %d", window)
	}
	k, aerr := s.liveKey(c, in.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	k.pendingWindow = window
	k.deletionDate = s.now().Add(time.Duration(window) * 24 * time.Hour)
	out := scheduleKeyDeletionOutput{KeyId: k.arn, PendingWindowInDays: window}
	if k.isPrimary() && len(s.replicasOf(k)) > 0 {
		// The waiting period starts when the last replica is deleted; until
		// then no DeletionDate is known [API ScheduleKeyDeletion].
		k.awaitingReplicas = true
	} else {
		out.DeletionDate = newEpoch(k.deletionDate)
	}
	out.KeyState = k.state()
	return out, nil
}

type keyIDOutput struct {
	KeyId string
}

// cancelKeyDeletion leaves the key Disabled (or PendingImport without
// material), as KMS does.
func (s *Server) cancelKeyDeletion(c *call, body []byte) (any, *apiError) {
	k, aerr := s.keyFromBody(c, body, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if !k.pendingDeletion() {
		return nil, errorf("KMSInvalidStateException", "%s is not pending deletion.", k.arn)
	}
	k.deletionDate = time.Time{}
	k.pendingWindow = 0
	k.awaitingReplicas = false
	k.enabled = false
	return keyIDOutput{KeyId: k.arn}, nil
}
