package hsm

import (
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// WrapMethod is how key material is wrapped for KMS inside the token:
// RSA-OAEP alone, or RSA-AES (RSA-OAEP of a one-use AES key, and RFC 5649
// of the key under it), with OAEP hash OAEP.
type WrapMethod struct {
	RSAAES bool
	OAEP   OAEPHash
}

func (w WrapMethod) String() string {
	if w.RSAAES {
		return "RSA-AES key wrap with OAEP " + w.OAEP.String()
	}
	return "RSA-OAEP " + w.OAEP.String()
}

// WrapMethods are every wrapping KMS accepts, strongest first.
var WrapMethods = []WrapMethod{{false, OAEPSHA256}, {true, OAEPSHA256}, {false, OAEPSHA1}, {true, OAEPSHA1}}

// Kind says what a token lacks, so a caller can tell a token that misses
// one mechanism (another algorithm may do) from one that cannot do the job
// at all (another HSM is needed).
type Kind int

// The kinds of UnsupportedError.
const (
	// KindWrap: the token cannot wrap this key with this method; another method may work.
	KindWrap Kind = iota
	// KindGenerate: the token cannot generate this kind of key as kmsbridge needs it.
	KindGenerate
	// KindProof: the token cannot compute the proof of import this key spec needs.
	KindProof
	// KindDualControl: the token cannot hold or does not enforce CKA_WRAP_WITH_TRUSTED.
	KindDualControl
	// KindNoWrap: the token cannot wrap (export) keys at all.
	KindNoWrap
	// KindNoGenerate: the token cannot generate keys at all.
	KindNoGenerate
	// KindPersisted: the token stored an object asked to be a session object.
	KindPersisted
	// KindWrappingKey: the token refuses to hold the KMS wrapping public
	// key as a session object, so it cannot wrap under it with any
	// algorithm; no wrap was tried.
	KindWrappingKey
	// KindTemplate: the token refuses a template kmsbridge needs for a
	// wrap (the one-use AES key of RSA-AES).
	KindTemplate
)

// MechanismInfo is one mechanism as C_GetMechanismList and
// C_GetMechanismInfo describe it.
type MechanismInfo struct {
	Mechanism uint   `json:"Mechanism"`
	Name      string `json:"Name"`
	// MinKeySize and MaxKeySize are in bits or bytes, as the mechanism defines.
	MinKeySize uint `json:"MinKeySize"`
	MaxKeySize uint `json:"MaxKeySize"`
	// Flags are CKF_ flags; 0 when C_GetMechanismInfo failed.
	Flags uint `json:"Flags"`
	// InfoError is C_GetMechanismInfo's failure, if any.
	InfoError string `json:"InfoError,omitempty"`
}

// Capabilities is what a token can do for kmsbridge, found before any
// change: the mechanisms it lists (with flags and key sizes), and probes on
// throwaway session objects, each destroyed right after. Probes run on
// demand and their answers are kept for the Token's lifetime. Get it with
// Token.Capabilities; every Capabilities of one Token is the same value.
//
// Its methods are safe from several goroutines at once. Every probe runs on
// a session of its own taken from the Token's pool (or, when an operation
// asks, on the session that operation already holds), never on a session
// another goroutine is using; probes run one at a time, and a question
// already answered is answered from the cache without a session.
type Capabilities struct {
	// t is the Token the exported probing methods take a session from:
	// the one OpenToken returned, or a bare Token.
	t     *Token
	label string
	// mechanisms and generatesAtAll are set once, before the value is
	// shared, and only read after.
	mechanisms     map[uint]MechanismInfo
	generatesAtAll error

	// probeMu is held while a probe runs and guards the answers probes
	// keep: keys, omitChecked, omitErr and dual. Lock order: a session
	// (and the token's serial lock) first, then probeMu, then the Token's
	// nativeMu or probeMu, then mu; a goroutine that holds probeMu without
	// a session never takes one.
	probeMu     sync.Mutex
	keys        map[string]*keyProbe
	omitChecked bool
	omitErr     error
	dual        *error

	// mu guards what operations read and add to outside a probe too. It is
	// held only briefly, never across a PKCS#11 call.
	mu sync.Mutex
	// wrapsAtAll is nil when the token can wrap.
	wrapsAtAll error
	// omitWWT: CKA_WRAP_WITH_TRUSTED=false is left out of templates
	// because the token rejects the attribute.
	omitWWT     bool
	adaptations []string
	notes       []string
}

// keyProbe is what probing one kind of key found.
type keyProbe struct {
	generate error
	wrap     map[WrapMethod]error
	proof    error
}

// Capabilities reads the token's mechanisms, once per Token (every view of
// it shares the answer). Probes run later, when a question needs them. It is
// safe from several goroutines at once.
func (t *Token) Capabilities() (*Capabilities, error) {
	if t.shared == nil {
		// A bare Token is used by one goroutine.
		if t.caps == nil {
			c, err := t.readCapabilities(t)
			if err != nil {
				return nil, err
			}
			t.caps = c
		}
		return t.caps, nil
	}
	t.shared.capsMu.Lock()
	defer t.shared.capsMu.Unlock()
	if t.shared.caps == nil {
		home := t.shared.root
		if home == nil {
			home = t
		}
		c, err := t.readCapabilities(home)
		if err != nil {
			return nil, err
		}
		t.shared.caps = c
	}
	return t.shared.caps, nil
}

// readCapabilities reads the mechanism list (slot calls, no session) into
// a new Capabilities whose exported probes take sessions from home.
func (t *Token) readCapabilities(home *Token) (*Capabilities, error) {
	list, err := t.p.GetMechanismList(t.slot)
	if err != nil {
		return nil, newError("C_GetMechanismList", err)
	}
	c := &Capabilities{t: home, label: t.id.Label, mechanisms: map[uint]MechanismInfo{}, keys: map[string]*keyProbe{}}
	var wrap, gen bool
	for _, m := range list {
		mi := MechanismInfo{Mechanism: m.Mechanism, Name: MechanismName(m.Mechanism)}
		info, err := t.p.GetMechanismInfo(t.slot, []*pkcs11.Mechanism{pkcs11.NewMechanism(m.Mechanism, nil)})
		if err != nil {
			mi.InfoError = newError("C_GetMechanismInfo", err).Error()
		} else {
			mi.MinKeySize, mi.MaxKeySize, mi.Flags = info.MinKeySize, info.MaxKeySize, info.Flags
		}
		wrap = wrap || mi.Flags&pkcs11.CKF_WRAP != 0
		gen = gen || mi.Flags&(pkcs11.CKF_GENERATE|pkcs11.CKF_GENERATE_KEY_PAIR) != 0
		c.mechanisms[m.Mechanism] = mi
	}
	id := t.id.Label
	if !wrap {
		c.wrapsAtAll = &UnsupportedError{Token: id, Kind: KindNoWrap, What: "any key wrapping", Why: "none of the mechanisms it lists has CKF_WRAP, so it cannot export any key, and nothing it holds can reach KMS; use an HSM whose PKCS#11 module wraps with CKM_RSA_PKCS_OAEP (CKF_WRAP), such as a network or PCIe HSM that allows extractable keys"}
	}
	if !gen {
		c.generatesAtAll = &UnsupportedError{Token: id, Kind: KindNoGenerate, What: "any key generation", Why: "none of the mechanisms it lists has CKF_GENERATE or CKF_GENERATE_KEY_PAIR; use an HSM that generates keys, or import an existing key without --generate"}
	}
	return c, nil
}

// Mechanisms lists the token's mechanisms in numeric order.
func (c *Capabilities) Mechanisms() []MechanismInfo {
	out := make([]MechanismInfo, 0, len(c.mechanisms))
	for _, m := range c.mechanisms {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Mechanism < out[j].Mechanism })
	return out
}

// has reports whether the token lists mech with all of flags (flags 0:
// listed at all). A mechanism whose info could not be read counts as
// having the flags: the probe will tell.
func (c *Capabilities) has(mech, flags uint) bool {
	m, ok := c.mechanisms[mech]
	if !ok {
		return false
	}
	return m.InfoError != "" || m.Flags&flags == flags
}

// Adaptations are the template changes made for this token, each with why
// it is safe; the result and record of an import carry them.
func (c *Capabilities) Adaptations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.adaptations...)
}

// Notes are what the probes found that an HSM owner should know, e.g. a
// session object the token stored anyway (and that was destroyed).
func (c *Capabilities) Notes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.notes...)
}

// note adds what a probe or an operation found that an HSM owner should know.
func (c *Capabilities) note(n string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notes = append(c.notes, n)
}

// unsupported is an UnsupportedError for this token.
func (c *Capabilities) unsupported(kind Kind, what, why string) error {
	return &UnsupportedError{Token: c.label, Kind: kind, What: what, Why: why}
}

// Ask is one question to a token: can it import a key of Key, generated
// here when Generate, wrapped with Wrap, under dual control when
// DualControl?
type Ask struct {
	Key         KeyParams
	Generate    bool
	Wrap        WrapMethod
	DualControl bool
}

// Check answers a, probing as needed, without changing anything the
// token keeps. A nil error means every part was checked to work; warnings
// say what the caller should pass on. An error is an *UnsupportedError
// whose Kind says whether another wrapping method could help, or a failed
// call. It is safe from several goroutines at once: probes run on a session
// from the pool, one at a time, and each answer is probed once per Token.
func (t *Token) Check(a Ask) (warnings []string, err error) {
	c, err := t.Capabilities()
	if err != nil {
		return nil, err
	}
	if err := c.WrapsAtAll(); err != nil {
		return nil, err
	}
	if a.Generate && c.generatesAtAll != nil {
		return nil, c.generatesAtAll
	}
	if a.DualControl {
		if err := c.dualControl(t); err != nil {
			return nil, err
		}
		if a.Wrap.RSAAES {
			return nil, c.unsupported(KindWrap, "RSA-AES under dual control", "RSA-AES wraps the key under a one-use AES key, which only the Security Officer could mark trusted, so a key with CKA_WRAP_WITH_TRUSTED can only be wrapped with RSA-OAEP")
		}
	}
	kp, err := c.probeKey(t, a.Key)
	if err != nil {
		return nil, err
	}
	if a.Generate && kp.generate != nil {
		return nil, kp.generate
	}
	if kp.proof != nil {
		return nil, kp.proof
	}
	if err := kp.wrap[a.Wrap]; err != nil {
		return nil, err
	}
	// A wrap probe of this key, by this goroutine or another, may have
	// found that the token cannot wrap at all.
	if err := c.WrapsAtAll(); err != nil {
		return nil, err
	}
	q := t.Quirks()
	if a.Wrap.RSAAES {
		if native, why := t.NativeRSAAES(a.Wrap.OAEP); !native && strings.Contains(why, "lists CKM_RSA_AES_KEY_WRAP") {
			warnings = append(warnings, why)
		}
		if !a.Key.Secret() && q.PadsToBlock {
			warnings = append(warnings, fmt.Sprintf("%s zero-pads the PKCS#8 of a private key to a multiple of 8 bytes before its RFC 5649 wrap, so KMS receives the DER followed by up to 7 zero bytes; strict parsers reject that, and whether KMS does is not known: prefer an HSM without this quirk for production keys", q.Name))
		}
	}
	if a.Generate {
		warnings = append(warnings, c.Adaptations()...)
	}
	return warnings, nil
}

// answer makes sure a question the probes keep is answered: known, asked
// with probeMu held, reports whether it is; when it is not, probe runs with
// probeMu held on a session of t's own (taken from the pool, or the one a
// bound view of t already holds), after known is asked again. The session
// is taken before probeMu, the lock order every operation keeps.
func (c *Capabilities) answer(t *Token, known func() bool, probe func(v *Token) error) error {
	c.probeMu.Lock()
	ok := known()
	c.probeMu.Unlock()
	if ok {
		return nil
	}
	v, done, err := t.bound()
	if err != nil {
		return err
	}
	defer done()
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if known() {
		return nil
	}
	return probe(v)
}

// onSession runs f with probeMu held on a session of t's own, for probes
// whose answers are not kept.
func (c *Capabilities) onSession(t *Token, f func(v *Token)) error {
	v, done, err := t.bound()
	if err != nil {
		return err
	}
	defer done()
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	f(v)
	return nil
}

// hmacHash is the hash KMS's HMAC key spec of n bytes uses.
func hmacHash(n int) crypto.Hash {
	switch n {
	case 28:
		return crypto.SHA224
	case 48:
		return crypto.SHA384
	case 64:
		return crypto.SHA512
	}
	return crypto.SHA256
}

// genMechanism is the mechanism that generates keys of p.
func genMechanism(p KeyParams) (uint, string) {
	switch p.KeyType {
	case pkcs11.CKK_AES:
		return pkcs11.CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"
	case pkcs11.CKK_GENERIC_SECRET:
		return pkcs11.CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN"
	case pkcs11.CKK_RSA:
		return pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"
	}
	return pkcs11.CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN"
}

// probeKey generates a throwaway session key of p, sensitive and
// extractable as the real one will be, checks it can be wrapped with each
// method and (for HMAC) that the token computes the proof HMAC with it,
// and destroys it, on a session of t's own. The answers are kept; a
// keyProbe is never changed once kept.
func (c *Capabilities) probeKey(t *Token, p KeyParams) (*keyProbe, error) {
	var kp *keyProbe
	err := c.answer(t, func() bool {
		kp = c.keys[p.String()]
		return kp != nil
	}, func(v *Token) error {
		var err error
		kp, err = c.probeKeyLocked(v, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return kp, nil
}

// probeKeyLocked is probeKey on the session of the bound view t, with
// probeMu held.
func (c *Capabilities) probeKeyLocked(t *Token, p KeyParams) (*keyProbe, error) {
	kp := &keyProbe{wrap: map[WrapMethod]error{}}
	mech, mechName := genMechanism(p)
	flag := uint(pkcs11.CKF_GENERATE)
	if !p.Secret() {
		flag = pkcs11.CKF_GENERATE_KEY_PAIR
	}
	var h pkcs11.ObjectHandle
	switch {
	case !c.has(mech, flag):
		kp.generate = c.unsupported(KindGenerate, "generation of "+p.String(), "it does not list "+mechName+" for generation")
	default:
		if err := c.checkOmissionsLocked(t); err != nil {
			return nil, err
		}
		var err error
		h, err = c.generateSession(t, p, mech)
		if err != nil {
			kp.generate = err
		}
	}
	if kp.generate != nil {
		// Without a probe key, wrapping and proof cannot be checked: say so
		// rather than guess.
		for _, w := range WrapMethods {
			kp.wrap[w] = c.unsupported(KindWrap, w.String()+" of "+p.String(), "no throwaway "+p.String()+" could be made to check it on")
		}
		c.keys[p.String()] = kp
		return kp, nil
	}
	defer func() { _ = t.p.DestroyObject(t.session, h) }()
	if p.KeyType == pkcs11.CKK_GENERIC_SECRET {
		hh := hmacHash(p.Bytes)
		if _, err := t.HMAC(&Key{Handle: h}, hh, []byte("kmsbridge probe")); err != nil {
			kp.proof = c.unsupported(KindProof, "the HMAC-"+strings.TrimPrefix(hh.String(), "SHA-")+" proof of "+p.String(), fmt.Sprintf("computing it failed (%v), and it is how kmsbridge proves KMS holds the same material", err))
		}
	}
	if p.KeyType == pkcs11.CKK_AES && p.Encrypts {
		if _, err := t.EncryptAESCBCPad(&Key{Handle: h}, make([]byte, AESBlock), []byte("kmsbridge probe")); err != nil {
			kp.proof = c.unsupported(KindProof, "the AES-CBC-PAD proof of "+p.String(), fmt.Sprintf("computing it failed (%v), and it is how kmsbridge proves the cloud holds the same AES key", err))
		}
	}
	for _, w := range WrapMethods {
		kp.wrap[w] = c.probeWrap(t, p, h, w)
	}
	c.keys[p.String()] = kp
	return kp, nil
}

// probeWrap wraps the probe key h under the probe public key (whose
// private half does not exist) with w, on the session of the bound view t.
func (c *Capabilities) probeWrap(t *Token, p KeyParams, h pkcs11.ObjectHandle, w WrapMethod) error {
	what := w.String() + " of " + p.String()
	if !c.has(pkcs11.CKM_RSA_PKCS_OAEP, pkcs11.CKF_WRAP) {
		why := "it does not list CKM_RSA_PKCS_OAEP"
		if _, listed := c.mechanisms[pkcs11.CKM_RSA_PKCS_OAEP]; listed {
			why = "it lists CKM_RSA_PKCS_OAEP but without CKF_WRAP"
		}
		return c.unsupported(KindWrap, what, why)
	}
	var err error
	if w.RSAAES {
		q := t.Quirks()
		if native, _ := t.NativeRSAAES(w.OAEP); !native {
			if !c.has(q.KWPMechanism, pkcs11.CKF_WRAP) {
				return c.unsupported(KindWrap, what, fmt.Sprintf("it lists no AES key wrap with padding (RFC 5649, %s) with CKF_WRAP", MechanismName(q.KWPMechanism)))
			}
			if p.Secret() && q.PadsToBlock && p.Bytes%8 != 0 {
				return c.unsupported(KindWrap, what, fmt.Sprintf("%s zero-pads it to a multiple of 8 bytes before its RFC 5649 wrap (%d bytes), and KMS would refuse the longer material", q.Name, p.Bytes))
			}
		}
		var out []byte
		out, err = t.WrapRSAAES(&Key{Handle: h, Label: "probe"}, probeKey(), w.OAEP)
		if err == nil && (len(out) < probeKey().Size()+16 || (len(out)-probeKey().Size())%8 != 0) {
			return c.unsupported(KindWrap, what, fmt.Sprintf("its output is %d bytes, not RSA-OAEP plus RFC 5649", len(out)))
		}
	} else {
		_, err = t.WrapOAEP(&Key{Handle: h, Label: "probe"}, probeKey(), w.OAEP)
	}
	var (
		perr *Error
		u    *UnsupportedError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &u):
		// Already classified by the wrap (the wrapping key refused as a
		// session object, a template refused, an output of the wrong
		// length): a refusal of the wrapping key holds for every method.
		if u.Kind == KindWrappingKey {
			c.mu.Lock()
			c.wrapsAtAll = u
			c.mu.Unlock()
		}
		return u
	case errors.As(err, &perr) && perr.Call == "C_WrapKey" && perr.Code == pkcs11.CKR_DATA_LEN_RANGE && !w.RSAAES:
		// Too large for the 2048-bit probe key: the token does wrap such
		// keys; whether it fits the real wrapping key is KMS's size rule.
		return nil
	case errors.As(err, &perr) && perr.Call == "C_WrapKey" && perr.Code == pkcs11.CKR_FUNCTION_NOT_SUPPORTED:
		none := c.unsupported(KindNoWrap, "any key wrapping", "C_WrapKey returned CKR_FUNCTION_NOT_SUPPORTED: it cannot export any key, so nothing it holds can reach KMS; use an HSM whose PKCS#11 module implements C_WrapKey with CKM_RSA_PKCS_OAEP, such as a network or PCIe HSM that allows extractable keys")
		c.mu.Lock()
		c.wrapsAtAll = none
		c.mu.Unlock()
		return none
	case errors.As(err, &perr) && !callFailure(perr.Code):
		return c.unsupported(KindWrap, what, fmt.Sprintf("%s returned %s (%#x)", perr.Call, ckrName(perr.Code), uint(perr.Code)))
	}
	return err
}

// callFailure reports whether code says a call failed for a reason that
// is not the token's answer to what was asked (the device, the session,
// the login, memory): such a failure says nothing about what the token can
// do, so a probe returns it as it is, never as a refusal to keep.
func callFailure(code pkcs11.Error) bool {
	switch code {
	case pkcs11.CKR_DEVICE_ERROR, pkcs11.CKR_DEVICE_REMOVED, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_HOST_MEMORY,
		pkcs11.CKR_SESSION_HANDLE_INVALID, pkcs11.CKR_SESSION_CLOSED, pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED, pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED, pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_OPERATION_ACTIVE, pkcs11.CKR_FUNCTION_CANCELED, pkcs11.CKR_CANT_LOCK:
		return true
	}
	return false
}

// Generation is nil when a throwaway key of p was generated in the token
// (probed once, on a session from the pool), else why not.
func (c *Capabilities) Generation(p KeyParams) error {
	kp, err := c.probeKey(c.t, p)
	if err != nil {
		return err
	}
	return kp.generate
}

// Proof is nil when the proof of import p needs was computed in the token
// on a throwaway key (the HMAC of an HMAC key); key types whose proof
// needs no computation in the token (AES, RSA, EC) have none to probe, and
// Proof is nil for them when such a key could be generated. Otherwise it
// says why the proof is not possible or could not be checked.
func (c *Capabilities) Proof(p KeyParams) error {
	kp, err := c.probeKey(c.t, p)
	if err != nil {
		return err
	}
	if kp.generate != nil {
		return c.unsupported(KindProof, "a check of the proof of import of "+p.String(), "no throwaway "+p.String()+" could be made to check it on: "+kp.generate.Error())
	}
	return kp.proof
}

// probeLabel marks every throwaway object the probes make.
const probeLabel = "kmsbridge probe (session)"

// sessionCopy is tmpl as a throwaway session object: CKA_TOKEN false, the
// probe label, a random CKA_ID, and the adaptations made for this token.
func (c *Capabilities) sessionCopy(tmpl []*pkcs11.Attribute) []*pkcs11.Attribute {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	var out []*pkcs11.Attribute
	for _, a := range tmpl {
		switch a.Type {
		case pkcs11.CKA_TOKEN:
			a = pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false)
		case pkcs11.CKA_LABEL:
			a = pkcs11.NewAttribute(pkcs11.CKA_LABEL, probeLabel)
		case pkcs11.CKA_ID:
			a = pkcs11.NewAttribute(pkcs11.CKA_ID, id)
		}
		out = append(out, a)
	}
	return c.adapt(out)
}

// adapt leaves out of tmpl what this token rejects and may safely go:
// CKA_WRAP_WITH_TRUSTED when it is false, the PKCS#11 default.
func (c *Capabilities) adapt(tmpl []*pkcs11.Attribute) []*pkcs11.Attribute {
	c.mu.Lock()
	omit := c.omitWWT
	c.mu.Unlock()
	if !omit {
		return tmpl
	}
	var out []*pkcs11.Attribute
	for _, a := range tmpl {
		if a.Type == pkcs11.CKA_WRAP_WITH_TRUSTED && !boolean(a.Value) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// generateSession generates a throwaway session key (the private key of a
// pair) of p on the session of the bound view t and makes sure the token
// kept it a session object.
func (c *Capabilities) generateSession(t *Token, p KeyParams, mech uint) (pkcs11.ObjectHandle, error) {
	var (
		h, pubH pkcs11.ObjectHandle
		err     error
		call    = "C_GenerateKey"
	)
	if p.Secret() {
		h, err = t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, c.sessionCopy(SecretKeyTemplate(p, probeLabel, nil, false)))
	} else {
		call = "C_GenerateKeyPair"
		pub, priv := KeyPairTemplates(p, probeLabel, nil, false)
		pubH, h, err = t.p.GenerateKeyPair(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, c.sessionCopy(pub), c.sessionCopy(priv))
	}
	if err != nil {
		var perr *Error
		e := newError(call, err)
		if errors.As(e, &perr) {
			return 0, c.unsupported(KindGenerate, "generation of "+p.String()+" as a sensitive, extractable key", fmt.Sprintf("%s returned %s (%#x)", call, ckrName(perr.Code), uint(perr.Code)))
		}
		return 0, e
	}
	if pubH != 0 {
		if err := c.checkSession(t, pubH, p.String()+" public key"); err != nil {
			_ = t.p.DestroyObject(t.session, h)
			return 0, err
		}
		_ = t.p.DestroyObject(t.session, pubH)
	}
	if err := c.checkSession(t, h, p.String()); err != nil {
		return 0, err
	}
	return h, nil
}

// checkSession reads CKA_TOKEN of an object made as a session object, on
// the session of t that made it. One the token stored anyway is destroyed,
// and said so. It takes no probe lock, so operations call it too.
func (c *Capabilities) checkSession(t *Token, h pkcs11.ObjectHandle, what string) error {
	got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil)})
	if err != nil || len(got) != 1 || !boolean(got[0].Value) {
		return nil
	}
	derr := t.p.DestroyObject(t.session, h)
	note := fmt.Sprintf("token %q stored a throwaway %s asked to be a session object (CKA_TOKEN=false read back true)", t.id.Label, what)
	if derr != nil {
		note += fmt.Sprintf("; destroying it failed (%v): find and delete the object labelled %q", newError("C_DestroyObject", derr), probeLabel)
	} else {
		note += "; it was destroyed"
	}
	c.note(note)
	return c.unsupported(KindPersisted, "session objects", note+", so kmsbridge's one-use keys could outlive their session on it; use an HSM that keeps session objects in the session")
}

// checkOmissions finds out, once, whether the token accepts every
// attribute of kmsbridge's secret key template, on a throwaway session
// key. A token that rejects CKA_WRAP_WITH_TRUSTED (CKR_ATTRIBUTE_TYPE_INVALID)
// gets it left out where it is false, the PKCS#11 default; any other
// rejected attribute is named and refused. The check runs on a session of
// t's own.
func (c *Capabilities) checkOmissions(t *Token) error {
	var err error
	if aerr := c.answer(t, func() bool {
		err = c.omitErr
		return c.omitChecked
	}, func(v *Token) error {
		err = c.checkOmissionsLocked(v)
		return nil
	}); aerr != nil {
		return aerr
	}
	return err
}

// checkOmissionsLocked is checkOmissions on the session of the bound view
// t, with probeMu held.
func (c *Capabilities) checkOmissionsLocked(t *Token) error {
	if c.omitChecked {
		return c.omitErr
	}
	c.omitChecked = true
	p, mech := AES256(), uint(pkcs11.CKM_AES_KEY_GEN)
	if !c.has(mech, pkcs11.CKF_GENERATE) {
		p, mech = HMACKey(32), pkcs11.CKM_GENERIC_SECRET_KEY_GEN
		if !c.has(mech, pkcs11.CKF_GENERATE) {
			return nil
		}
	}
	tmpl := c.sessionCopy(SecretKeyTemplate(p, probeLabel, nil, false))
	h, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, tmpl)
	if err == nil {
		_ = t.p.DestroyObject(t.session, h)
		return nil
	}
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)) {
		return nil // the per-key probe reports it
	}
	bad := t.rejectedAttribute(mech, tmpl)
	if bad == pkcs11.CKA_WRAP_WITH_TRUSTED {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.omitWWT = true
		c.adaptations = append(c.adaptations, fmt.Sprintf("CKA_WRAP_WITH_TRUSTED=false was left out of the key templates: token %q rejects the attribute (C_GenerateKey: CKR_ATTRIBUTE_TYPE_INVALID), and false is the PKCS#11 default, so the key is the same; dual control is not possible on this token", t.id.Label))
		return nil
	}
	name := "an attribute kmsbridge could not single out"
	if bad != 0 {
		name = AttributeName(bad)
	}
	c.omitErr = c.unsupported(KindGenerate, "kmsbridge's key template", fmt.Sprintf("C_GenerateKey returned CKR_ATTRIBUTE_TYPE_INVALID for %s, which kmsbridge never leaves out because the key's safety depends on it", name))
	return c.omitErr
}

// rejectedAttribute finds which attribute of tmpl the token rejects by
// generating throwaway session keys with one attribute left out at a time.
// It returns 0 when no single attribute explains it.
func (t *Token) rejectedAttribute(mech uint, tmpl []*pkcs11.Attribute) uint {
	for i, a := range tmpl {
		switch a.Type {
		case pkcs11.CKA_CLASS, pkcs11.CKA_KEY_TYPE, pkcs11.CKA_TOKEN, pkcs11.CKA_VALUE_LEN:
			continue // never left out, not even for a probe
		}
		try := append(append([]*pkcs11.Attribute{}, tmpl[:i]...), tmpl[i+1:]...)
		h, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, try)
		if err == nil {
			_ = t.p.DestroyObject(t.session, h)
			return a.Type
		}
	}
	return 0
}

// DualControl reports whether the token can hold CKA_WRAP_WITH_TRUSTED=true
// and enforces it: a throwaway session key with it set must be refused a
// wrap under an untrusted session wrapping key. nil means it does. The
// probe runs once per Token, on a session from its pool.
func (c *Capabilities) DualControl() error { return c.dualControl(c.t) }

// dualControl is DualControl probing on a session of t's own, so that an
// operation holding a session (a bound view) probes on it.
func (c *Capabilities) dualControl(t *Token) error {
	var err error
	if aerr := c.answer(t, func() bool {
		if c.dual != nil {
			err = *c.dual
		}
		return c.dual != nil
	}, func(v *Token) error {
		err = c.probeDualControl(v)
		c.dual = &err
		return nil
	}); aerr != nil {
		return aerr
	}
	return err
}

// probeDualControl probes on the session of the bound view t, with probeMu
// held.
func (c *Capabilities) probeDualControl(t *Token) error {
	what := "dual control (CKA_WRAP_WITH_TRUSTED)"
	if err := c.checkOmissionsLocked(t); err != nil {
		return err
	}
	c.mu.Lock()
	omit := c.omitWWT
	c.mu.Unlock()
	if omit {
		return c.unsupported(KindDualControl, what, "it rejects the CKA_WRAP_WITH_TRUSTED attribute (CKR_ATTRIBUTE_TYPE_INVALID), so a key cannot be restricted to wrapping keys the Security Officer approved; use an HSM that enforces CKA_WRAP_WITH_TRUSTED")
	}
	if !c.has(pkcs11.CKM_AES_KEY_GEN, pkcs11.CKF_GENERATE) {
		return c.unsupported(KindDualControl, what, "it cannot generate the AES key the check needs (no CKM_AES_KEY_GEN)")
	}
	tmpl := c.sessionCopy(SecretKeyTemplate(AES256(), probeLabel, nil, true))
	for i, a := range tmpl {
		if a.Type == pkcs11.CKA_PRIVATE {
			// public, so the check also runs in a Security Officer's session
			tmpl[i] = pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, false)
		}
	}
	h, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		return c.unsupported(KindDualControl, what, fmt.Sprintf("it cannot generate a key with CKA_WRAP_WITH_TRUSTED=true (%v)", newError("C_GenerateKey", err)))
	}
	defer func() { _ = t.p.DestroyObject(t.session, h) }()
	if err := c.checkSession(t, h, "AES-256 key"); err != nil {
		return err
	}
	got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_WRAP_WITH_TRUSTED, nil)})
	if err != nil || len(got) != 1 || !boolean(got[0].Value) {
		return c.unsupported(KindDualControl, what, "a key generated with CKA_WRAP_WITH_TRUSTED=true does not read back true")
	}
	// WrapOAEP of a key with WrapWithTrusted looks for an approved key; the
	// check needs the untrusted path, so the handle is passed as a plain key.
	_, err = t.WrapOAEP(&Key{Handle: h, Label: "probe"}, probeKey(), OAEPSHA1)
	if err == nil {
		return c.unsupported(KindDualControl, what, "it wrapped a key with CKA_WRAP_WITH_TRUSTED=true under an untrusted wrapping key, so it does not enforce the attribute and dual control would be a promise it does not keep; use an HSM that enforces it")
	}
	if errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_NOT_WRAPPABLE)) {
		return nil
	}
	return c.unsupported(KindDualControl, what, fmt.Sprintf("refusing the untrusted wrap failed with %v instead of CKR_KEY_NOT_WRAPPABLE, so whether it enforces the attribute is not known", err))
}

// CheckValue reports whether the token gives AES keys a CKA_CHECK_VALUE.
// It is asked of a throwaway session key, on a session from the pool.
func (c *Capabilities) CheckValue() bool {
	var ok bool
	_ = c.onSession(c.t, func(v *Token) { ok = c.checkValue(v) })
	return ok
}

func (c *Capabilities) checkValue(t *Token) bool {
	if c.checkOmissionsLocked(t) != nil || !c.has(pkcs11.CKM_AES_KEY_GEN, pkcs11.CKF_GENERATE) {
		return false
	}
	h, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, c.sessionCopy(SecretKeyTemplate(AES256(), probeLabel, nil, false)))
	if err != nil {
		return false
	}
	defer func() { _ = t.p.DestroyObject(t.session, h) }()
	got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CHECK_VALUE, nil)})
	return err == nil && len(got) == 1 && len(got[0].Value) > 0
}

// WrapsAtAll is nil when the token can wrap keys at all, else why not.
func (c *Capabilities) WrapsAtAll() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wrapsAtAll
}

// GeneratesAtAll is nil when the token can generate keys at all, else why not.
func (c *Capabilities) GeneratesAtAll() error { return c.generatesAtAll }

// DualControlSupported is nil when the token holds and enforces
// CKA_WRAP_WITH_TRUSTED, checked on throwaway session keys; else why not.
func (t *Token) DualControlSupported() error {
	c, err := t.Capabilities()
	if err != nil {
		return err
	}
	return c.dualControl(t)
}

// Provenance says what the token tells about where a key came from, read
// on a throwaway AES (or generic secret) session key it generated:
// CKA_LOCAL (generated in the token), CKA_ALWAYS_SENSITIVE and
// CKA_NEVER_EXTRACTABLE. Each value is the one read back, or why none was.
// It runs on a session from the pool.
func (c *Capabilities) Provenance() map[string]string {
	var out map[string]string
	if err := c.onSession(c.t, func(v *Token) { out = c.provenance(v) }); err != nil {
		out = map[string]string{}
		for _, a := range []uint{pkcs11.CKA_LOCAL, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE} {
			out[provenanceName(a)] = "not checked: " + err.Error()
		}
	}
	return out
}

func (c *Capabilities) provenance(t *Token) map[string]string {
	out := map[string]string{}
	p, mech := AES256(), uint(pkcs11.CKM_AES_KEY_GEN)
	if !c.has(mech, pkcs11.CKF_GENERATE) {
		p, mech = HMACKey(32), pkcs11.CKM_GENERIC_SECRET_KEY_GEN
	}
	attrs := []uint{pkcs11.CKA_LOCAL, pkcs11.CKA_ALWAYS_SENSITIVE, pkcs11.CKA_NEVER_EXTRACTABLE}
	if err := c.checkOmissionsLocked(t); err != nil || !c.has(mech, pkcs11.CKF_GENERATE) {
		for _, a := range attrs {
			out[provenanceName(a)] = "not checked: the token cannot generate a throwaway key"
		}
		return out
	}
	h, err := t.p.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, c.sessionCopy(SecretKeyTemplate(p, probeLabel, nil, false)))
	if err != nil {
		for _, a := range attrs {
			out[provenanceName(a)] = "not checked: " + newError("C_GenerateKey", err).Error()
		}
		return out
	}
	defer func() { _ = t.p.DestroyObject(t.session, h) }()
	for _, a := range attrs {
		got, err := t.p.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(a, nil)})
		switch {
		case err != nil:
			out[provenanceName(a)] = "not provided: " + newError("C_GetAttributeValue", err).Error()
		case len(got) == 1:
			out[provenanceName(a)] = attrString(got[0].Value)
		}
	}
	return out
}

func provenanceName(a uint) string {
	switch a {
	case pkcs11.CKA_LOCAL:
		return "CKA_LOCAL"
	case pkcs11.CKA_ALWAYS_SENSITIVE:
		return "CKA_ALWAYS_SENSITIVE"
	case pkcs11.CKA_NEVER_EXTRACTABLE:
		return "CKA_NEVER_EXTRACTABLE"
	}
	return AttributeName(a)
}
