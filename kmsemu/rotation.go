package kmsemu

import (
	"time"
)

// KeyMaterialState values, and the other rotation enums, as the KMS API
// names them. See doc.go, "Key material and on-demand rotation".
const (
	matCurrent                = "CURRENT"
	matNonCurrent             = "NON_CURRENT"
	matPendingRotation        = "PENDING_ROTATION"
	matPendingMultiRegion     = "PENDING_MULTI_REGION_IMPORT_AND_ROTATION"
	importStateImported       = "IMPORTED"
	importStatePendingImport  = "PENDING_IMPORT"
	rotationTypeOnDemand      = "ON_DEMAND"
	includeAllKeyMaterial     = "ALL_KEY_MATERIAL"
	includeRotationsOnly      = "ROTATIONS_ONLY"
	maxOnDemandRotations      = 25
	defaultRotationDelay      = 2 * time.Second
	defaultReplicaCreating    = time.Second
	rotationsDefaultPageLimit = 100
	rotationsMaxPageLimit     = 1000
)

// keyMat is one key material of a key.
type keyMat struct {
	// id is the KeyMaterialId; secret is what the same-material rule
	// compares (see keyMaterial.canonical) and priv the private key of key
	// pairs.
	id     string
	secret []byte
	priv   any
	// state is the KeyMaterialState.
	state string
	// imported says whether the material is usable now (ImportState
	// IMPORTED); AWS_KMS material always is.
	imported        bool
	expirationModel string
	validTo         time.Time
	description     string
	// rotationDate and rotationType are set when the material became
	// current through a rotation.
	rotationDate time.Time
	rotationType string
}

// associated reports whether m is permanently associated with its key:
// CURRENT or NON_CURRENT. Material pending rotation is not.
func (m *keyMat) associated() bool {
	return m.state == matCurrent || m.state == matNonCurrent
}

func (m *keyMat) pending() bool {
	return m.state == matPendingRotation || m.state == matPendingMultiRegion
}

// unimport makes the material unusable but keeps it for the same-material
// rule: what DeleteImportedKeyMaterial and expiry do.
func (m *keyMat) unimport() {
	m.imported = false
	m.expirationModel = ""
	m.validTo = time.Time{}
}

// current is the CURRENT material, or nil before the first import.
func (k *key) current() *keyMat {
	for _, m := range k.mats {
		if m.state == matCurrent {
			return m
		}
	}
	return nil
}

// pendingMat is the material pending rotation, or nil.
func (k *key) pendingMat() *keyMat {
	for _, m := range k.mats {
		if m.pending() {
			return m
		}
	}
	return nil
}

// matByID finds one of the key's materials by KeyMaterialId.
func (k *key) matByID(id string) *keyMat {
	for _, m := range k.mats {
		if m.id == id {
			return m
		}
	}
	return nil
}

// matBySecret finds one of the key's materials by its value.
func (k *key) matBySecret(secret []byte) *keyMat {
	for _, m := range k.mats {
		if string(m.secret) == string(secret) {
			return m
		}
	}
	return nil
}

// hasUsableMaterial reports whether the key has current material and every
// material permanently associated with it is imported: if any of them is
// deleted or expires, the key is PendingImport.
func (k *key) hasUsableMaterial() bool {
	if k.current() == nil {
		return false
	}
	for _, m := range k.mats {
		if m.associated() && !m.imported {
			return false
		}
	}
	return true
}

// expiry is what DescribeKey reports of an EXTERNAL key's expiration:
// KEY_MATERIAL_EXPIRES with the earliest ValidTo of the imported associated
// materials if any of them expires, else the current material's model
// while it is imported, else nothing.
func (k *key) expiry() (string, *epochTime) {
	var earliest time.Time
	for _, m := range k.mats {
		if m.associated() && m.imported && m.expirationModel == expirationExpires {
			if earliest.IsZero() || m.validTo.Before(earliest) {
				earliest = m.validTo
			}
		}
	}
	if !earliest.IsZero() {
		return expirationExpires, newEpoch(earliest)
	}
	if cur := k.current(); cur != nil && cur.imported {
		return cur.expirationModel, nil
	}
	return "", nil
}

// onDemandRotations counts the on-demand rotations of the key, the one
// under way included.
func (k *key) onDemandRotations() int {
	n := 0
	for _, m := range k.mats {
		if m.rotationType == rotationTypeOnDemand {
			n++
		}
	}
	if !k.rotateAt.IsZero() {
		n++
	}
	return n
}

// applyRotations completes every on-demand rotation whose time has come.
// Called by applyClock with s.mu held.
func (s *Server) applyRotations(r *regionState, now time.Time) {
	for _, k := range r.keys {
		if !k.rotateAt.IsZero() && !now.Before(k.rotateAt) {
			s.completeRotation(k)
		}
	}
}

// completeRotation makes the material pending rotation current, and the
// current one NON_CURRENT, as KMS does when an on-demand rotation finishes.
// If the pending material was deleted or expired meanwhile, the rotation
// is abandoned.
func (s *Server) completeRotation(k *key) {
	at := k.rotateAt
	k.rotateAt, k.rotateStarted = time.Time{}, time.Time{}
	next := k.pendingMat()
	if k.origin == originAWSKMS {
		m, err := generateMaterial(k.ks())
		if err != nil {
			s.log.Error("on-demand rotation failed: cannot generate key material", "key", k.id, "error", err)
			return
		}
		next = &keyMat{id: s.materialIDFor(k.id, m.canonical), secret: m.canonical, imported: true}
		k.mats = append(k.mats, next)
	}
	if next == nil || !next.imported {
		s.log.Warn("on-demand rotation abandoned: the key material pending rotation is no longer imported", "key", k.id)
		return
	}
	if cur := k.current(); cur != nil {
		cur.state = matNonCurrent
	}
	next.state = matCurrent
	next.rotationDate = at
	next.rotationType = rotationTypeOnDemand
	s.log.Info("on-demand rotation completed", "key", k.id, "keyMaterialId", next.id)
	s.onRotationCompleted(k, next, at)
}

type rotateKeyOnDemandOutput struct {
	KeyId string
}

// rotateKeyOnDemand starts an on-demand rotation; it completes
// Options.RotationDelay later on the emulator's clock.
func (s *Server) rotateKeyOnDemand(c *call, body []byte) (any, *apiError) {
	k, aerr := s.keyFromBody(c, body, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	// The key's state is checked before its type: a disabled asymmetric
	// key is DisabledException too [Recorded].
	switch st := k.state(); {
	case st == stateDisabled:
		return nil, errorf("DisabledException", "%s is disabled.", k.arn)
	case st != stateEnabled:
		return nil, invalidState(k, c.op)
	}
	if aerr := symmetricOnly(k, "on-demand rotation is supported only on symmetric encryption keys"); aerr != nil {
		return nil, aerr
	}
	if aerr := s.rotationAllowed(k); aerr != nil {
		return nil, aerr
	}
	if !k.rotateAt.IsZero() {
		return nil, errorf("ConflictException", "An on-demand rotation of %s is already in progress (started %s)", k.arn, k.rotateStarted.UTC().Format(time.RFC3339))
	}
	if k.onDemandRotations() >= maxOnDemandRotations {
		return nil, errorf("LimitExceededException", "The on-demand rotations limit has been reached for the given keyId. No more on-demand rotations can be performed for this key: %s", k.arn)
	}
	if k.origin == originExternal {
		p := k.pendingMat()
		switch {
		case p == nil || !p.imported:
			return nil, errorf("KMSInvalidStateException", "No available key material pending rotation for the key: %s.", k.arn)
		case p.state == matPendingMultiRegion:
			return nil, errorf("KMSInvalidStateException", "Key material %s of %s is in state %s: import it into every replica key before rotating", p.id, k.arn, p.state)
		}
	}
	now := s.now()
	k.rotateStarted = now
	k.rotateAt = now.Add(s.rotationDelay)
	return rotateKeyOnDemandOutput{KeyId: k.arn}, nil
}

type listKeyRotationsInput struct {
	KeyId              *string
	IncludeKeyMaterial *string
	Limit              *int32
	Marker             *string
}

type rotationsListEntry struct {
	KeyId                  string
	KeyMaterialId          string
	KeyMaterialDescription string     `json:",omitempty"`
	ImportState            string     `json:",omitempty"`
	KeyMaterialState       string     `json:",omitempty"`
	ExpirationModel        string     `json:",omitempty"`
	ValidTo                *epochTime `json:",omitempty"`
	RotationDate           *epochTime `json:",omitempty"`
	RotationType           string     `json:",omitempty"`
}

type listKeyRotationsOutput struct {
	Rotations  []rotationsListEntry
	NextMarker *string `json:",omitempty"`
	Truncated  bool
}

// listKeyRotations lists completed rotations (ROTATIONS_ONLY, the default)
// or every material of the key (ALL_KEY_MATERIAL), oldest first.
func (s *Server) listKeyRotations(c *call, body []byte) (any, *apiError) {
	var in listKeyRotationsInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	v.enum("includeKeyMaterial", in.IncludeKeyMaterial, []string{includeAllKeyMaterial, includeRotationsOnly})
	if err := v.err(); err != nil {
		return nil, err
	}
	k, aerr := s.resolveKey(c, "keyId", in.KeyId, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := symmetricOnly(k, "only symmetric encryption keys have key rotations"); aerr != nil {
		return nil, aerr
	}
	all := in.IncludeKeyMaterial != nil && *in.IncludeKeyMaterial == includeAllKeyMaterial
	var entries []rotationsListEntry
	for _, m := range k.mats {
		if !all && m.rotationType == "" {
			continue // the first material, or one pending rotation
		}
		e := rotationsListEntry{KeyId: k.id, KeyMaterialId: m.id, KeyMaterialState: m.state, RotationType: m.rotationType}
		if !m.rotationDate.IsZero() {
			e.RotationDate = newEpoch(m.rotationDate)
		}
		if k.origin == originExternal {
			e.KeyMaterialDescription = m.description
			e.ImportState = importStatePendingImport
			if m.imported {
				e.ImportState = importStateImported
				e.ExpirationModel = m.expirationModel
				if m.expirationModel == expirationExpires {
					e.ValidTo = newEpoch(m.validTo)
				}
			}
		}
		entries = append(entries, e)
	}
	start, end, next, truncated, aerr := page(len(entries), in.Limit, in.Marker, rotationsDefaultPageLimit, rotationsMaxPageLimit)
	if aerr != nil {
		return nil, aerr
	}
	out := listKeyRotationsOutput{Rotations: []rotationsListEntry{}, NextMarker: next, Truncated: truncated}
	out.Rotations = append(out.Rotations, entries[start:end]...)
	return out, nil
}

type getKeyRotationStatusOutput struct {
	KeyId                     string
	KeyRotationEnabled        bool
	OnDemandRotationStartDate *epochTime `json:",omitempty"`
}

// getKeyRotationStatus reports automatic rotation as off (the emulator
// has none) and the start of an on-demand rotation under way.
func (s *Server) getKeyRotationStatus(c *call, body []byte) (any, *apiError) {
	k, aerr := s.keyFromBody(c, body, keyIDOrARN)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := symmetricOnly(k, "key rotation applies only to symmetric encryption keys"); aerr != nil {
		return nil, aerr
	}
	out := getKeyRotationStatusOutput{KeyId: k.arn}
	if !k.rotateAt.IsZero() {
		out.OnDemandRotationStartDate = newEpoch(k.rotateStarted)
	}
	return out, nil
}

// symmetricOnly refuses, as KMS does, a rotation operation on a key that is
// not a symmetric encryption key; why says what only such keys have.
func symmetricOnly(k *key, why string) *apiError {
	if k.spec == specSymmetric {
		return nil
	}
	return errorf("UnsupportedOperationException", "%s is %s %s key: %s", k.arn, article(k.spec), k.spec, why)
}
