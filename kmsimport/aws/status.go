package aws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// InventoryToken is what status needs from a token: the flow's Token, to
// verify, and a list of its keys. *hsm.Token satisfies it.
type InventoryToken interface {
	kmsimport.Token
	ListKeys() ([]*hsm.Key, error)
}

var _ InventoryToken = (*hsm.Token)(nil)

// Regional is a KMS client and the Region it talks to.
type Regional struct {
	Region string
	KMS    API
}

// StatusOptions say which sides status reads and what counts as a problem.
type StatusOptions struct {
	// KMS lists the Regions to inventory, the home Region first; empty
	// reads the token side only.
	KMS []Regional
	// Token is the open token; nil reads the KMS side only.
	Token InventoryToken
	// WarnDays: material expiring within this many days is a warning.
	WarnDays int
	// MaxKeys bounds the KMS keys read per Region (each costs a
	// ListResourceTags call); 0 means DefaultMaxKeys.
	MaxKeys int
	// Verify proves each linked pair with the HSM (as verify does).
	Verify bool
	// TokenFlags and KMSFlags are the flags, as the operator gave them,
	// that chose this run's token and KMS account (Region, profile,
	// endpoint): every fix status prints carries them, so it runs as
	// printed on this host.
	TokenFlags, KMSFlags []string
	Now                  func() time.Time
	Log                  *slog.Logger
}

// ProofNotChecked is the Proof of a key status did not verify.
const ProofNotChecked = "not checked"

// DefaultMaxKeys is the default bound on KMS keys read per Region.
const DefaultMaxKeys = 2000

// Health is the overall verdict of a status run, worst first.
type Health string

// Healths, from best to worst.
const (
	HealthOK       Health = "ok"
	HealthExpiring Health = "expiring"
	HealthBroken   Health = "broken"
)

// Problem kinds status reports.
const (
	ProblemMissingHSMKey   = "missing-hsm-key"
	ProblemLinkedTwice     = "hsm-key-linked-twice"
	ProblemExpiring        = "expiring"
	ProblemPendingImport   = "pending-import"
	ProblemRotationPending = "rotation-pending"
	ProblemVerification    = "verification-failed"
	ProblemIncomplete      = "inventory-incomplete"
)

// Problem is one thing an operator must act on.
type Problem struct {
	Kind     string `json:"Kind"`
	Severity Health `json:"Severity"`
	// Cloud is the cloud of the key, for another cloud's target; "" for
	// AWS KMS.
	Cloud    string `json:"Cloud,omitempty"`
	KeyId    string `json:"KmsKeyId,omitempty"`
	Region   string `json:"Region,omitempty"`
	HSMKeyID string `json:"HsmKeyId,omitempty"`
	Message  string `json:"Message"`
	// Fix is the command or action that resolves it.
	Fix string `json:"Fix,omitempty"`
}

// StatusKMSKey is one KMS key kmsbridge linked to an HSM key.
type StatusKMSKey struct {
	// Cloud is always aws: the other clouds' keys are Status.Targets.
	Cloud       string     `json:"Cloud"`
	KeyId       string     `json:"KeyId"`
	Arn         string     `json:"Arn"`
	Region      string     `json:"Region"`
	Aliases     []string   `json:"Aliases,omitempty"`
	KeySpec     string     `json:"KeySpec"`
	KeyUsage    string     `json:"KeyUsage"`
	KeyState    string     `json:"KeyState"`
	MultiRegion string     `json:"MultiRegionKeyType,omitempty"`
	ValidTo     *time.Time `json:"ValidTo,omitempty"`
	// DaysToExpiry counts down to the earliest ValidTo of imported material.
	DaysToExpiry *int       `json:"DaysToExpiry,omitempty"`
	Materials    []Material `json:"KeyMaterials"`
	HSMKeyID     string     `json:"HsmKeyId"`
	HSMKeyLabel  string     `json:"HsmKeyLabel,omitempty"`
	TokenSerial  string     `json:"TokenSerial,omitempty"`
	// Proof says what was proven about KMS holding the HSM's material.
	Proof string `json:"Proof"`
	// LinkedBy says what links the KMS key to HSMKeyID: kmsimport.
	// LinkedByTags (its kmsbridge tags), or LinkedByVerified when --verify
	// confirmed KMS holds the HSM key's material.
	LinkedBy string `json:"LinkedBy"`
	Note     string `json:"Note,omitempty"`
	// RotatedTo is the KMS key a manual rotation replaced this one with;
	// the key is kept for what was encrypted or signed with it.
	RotatedTo string `json:"RotatedTo,omitempty"`
}

// StatusHSMKey is one key in the token.
type StatusHSMKey struct {
	Label   string `json:"Label"`
	ID      string `json:"CkaId"`
	URI     string `json:"Uri"`
	KeyType string `json:"KeyType"`
	// KMSKeys are the ids of the KMS keys whose material it holds.
	KMSKeys []string `json:"KmsKeys,omitempty"`
}

// Status is the joined inventory of a token and a KMS account.
type Status struct {
	Time     time.Time          `json:"Time"`
	WarnDays int                `json:"WarnDays"`
	Token    *hsm.TokenIdentity `json:"Token,omitempty"`
	Regions  []string           `json:"Regions,omitempty"`
	HSMKeys  []StatusHSMKey     `json:"HsmKeys"`
	KMSKeys  []StatusKMSKey     `json:"KmsKeys"`
	Problems []Problem          `json:"Problems"`
	Health   Health             `json:"Health"`
	// OutstandingApprovals are the dual-control approvals (trusted
	// wrapping keys) still in the token: each allows one more wrap until
	// it is used or revoked (kmsbridge approve --revoke).
	OutstandingApprovals []hsm.Approval `json:"OutstandingApprovals,omitempty"`
	// Targets are the HSM keys' copies in other clouds (Cloud KMS, Key
	// Vault), from a ceremony file's targets (AddTargets).
	Targets []kmsimport.StatusTarget `json:"Targets,omitempty"`
	// KMSEndpoints are the endpoints the KMS side was read from, one per
	// Region, with the TLS peer that answered.
	KMSEndpoints []RegionEndpoint `json:"KmsEndpoints,omitempty"`
}

// RegionEndpoint is where one Region's KMS requests went.
type RegionEndpoint struct {
	Region string `json:"Region"`
	kmsimport.Endpoint
}

// ReadStatus reads the token's keys and the linked KMS keys of every
// Region and joins them. It changes nothing.
func ReadStatus(ctx context.Context, o StatusOptions) (*Status, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	st := &Status{Time: now().UTC().Truncate(time.Second), WarnDays: o.WarnDays, HSMKeys: []StatusHSMKey{}, KMSKeys: []StatusKMSKey{}, Problems: []Problem{}}
	hsmByID := map[string]*hsm.Key{}
	if o.Token != nil {
		id := o.Token.Identity()
		st.Token = &id
		keys, err := o.Token.ListKeys()
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			hsmByID[k.IDHex()] = k
			st.HSMKeys = append(st.HSMKeys, StatusHSMKey{Label: k.Label, ID: k.IDHex(), URI: hsm.KeyURI(id, k), KeyType: keyTypeName(k)})
		}
		// By label, then CKA_ID: a token lists its objects in an order of
		// its own (SoftHSM2: its file names, random), and two runs over
		// the same keys should print the same report.
		sort.Slice(st.HSMKeys, func(i, j int) bool {
			a, b := st.HSMKeys[i], st.HSMKeys[j]
			if a.Label != b.Label {
				return a.Label < b.Label
			}
			return a.ID < b.ID
		})
	}
	for _, rg := range o.KMS {
		st.Regions = append(st.Regions, rg.Region)
		keys, incomplete, err := linkedKeys(ctx, rg, o)
		if err != nil {
			return nil, err
		}
		if incomplete != "" {
			st.Problems = append(st.Problems, Problem{Kind: ProblemIncomplete, Severity: HealthBroken, Region: rg.Region, Message: incomplete, Fix: "raise --max-keys"})
		}
		for i := range keys {
			k := &keys[i]
			k.Cloud = kmsimport.CloudAWS
			if o.Verify && o.Token != nil {
				k.Proof = proveKey(ctx, rg.KMS, o.Token, k, hsmByID)
			}
			k.LinkedBy = linkedBy(k.Proof)
		}
		st.KMSKeys = append(st.KMSKeys, keys...)
	}
	st.join(now(), o, hsmByID)
	for _, rg := range o.KMS {
		if l, ok := rg.KMS.(Located); ok {
			st.KMSEndpoints = append(st.KMSEndpoints, RegionEndpoint{Region: rg.Region, Endpoint: l.Endpoint()})
		}
	}
	return st, nil
}

// linkedKeys lists the Region's KMS keys that carry kmsbridge link tags.
func linkedKeys(ctx context.Context, rg Regional, o StatusOptions) ([]StatusKMSKey, string, error) {
	max := o.MaxKeys
	if max <= 0 {
		max = DefaultMaxKeys
	}
	aliases := map[string][]string{}
	ap := kms.NewListAliasesPaginator(rg.KMS, &kms.ListAliasesInput{})
	for ap.HasMorePages() {
		page, err := ap.NextPage(ctx)
		if err != nil {
			return nil, "", explain("ListAliases", err)
		}
		for _, a := range page.Aliases {
			if a.TargetKeyId != nil {
				aliases[*a.TargetKeyId] = append(aliases[*a.TargetKeyId], aws.ToString(a.AliasName))
			}
		}
	}
	var out []StatusKMSKey
	seen := 0
	p := kms.NewListKeysPaginator(rg.KMS, &kms.ListKeysInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, "", explain("ListKeys", err)
		}
		for _, ke := range page.Keys {
			if seen >= max {
				return out, fmt.Sprintf("region %s has more than %d KMS keys; only the first %d were read", rg.Region, max, max), nil
			}
			seen++
			if seen%100 == 0 && o.Log != nil {
				o.Log.Info("reading KMS key tags", "region", rg.Region, "keys", seen)
			}
			id := aws.ToString(ke.KeyId)
			tags, err := (&run{im: &Importer{KMS: rg.KMS}}).listTags(ctx, id)
			if err != nil {
				var kerr *kmsimport.KMSError
				if errors.As(err, &kerr) && (kerr.Code == "NotFoundException" || kerr.Code == "AccessDeniedException") {
					// Deleted since ListKeys, or a key this role may not read
					// (AWS managed keys): not kmsbridge's.
					continue
				}
				return nil, "", err
			}
			if tags[TagHSMKeyID] == "" {
				continue
			}
			d, err := rg.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
			if err != nil {
				return nil, "", explain("DescribeKey", err)
			}
			md := d.KeyMetadata
			if md.KeyState == types.KeyStatePendingDeletion {
				continue
			}
			k := StatusKMSKey{
				KeyId: id, Arn: aws.ToString(md.Arn), Region: rg.Region, Aliases: aliases[id],
				KeySpec: string(md.KeySpec), KeyUsage: string(md.KeyUsage), KeyState: string(md.KeyState),
				HSMKeyID: tags[TagHSMKeyID], HSMKeyLabel: tags[TagHSMKeyLabel], TokenSerial: tags[TagTokenSerial],
				Proof: ProofNotChecked, RotatedTo: tags[TagRotatedTo],
			}
			if md.MultiRegion != nil && *md.MultiRegion && md.MultiRegionConfiguration != nil {
				k.MultiRegion = string(md.MultiRegionConfiguration.MultiRegionKeyType)
			}
			ms, note, err := ListMaterials(ctx, rg.KMS, md, tags)
			if err != nil {
				return nil, "", err
			}
			k.Materials, k.Note = ms, note
			out = append(out, k)
		}
	}
	if o.Log != nil && seen >= 100 {
		o.Log.Info("read KMS key tags", "region", rg.Region, "keys", seen, "linked", len(out))
	}
	return out, "", nil
}

// proveKey verifies a linked pair as verify does, for the Proof column.
func proveKey(ctx context.Context, api API, tok kmsimport.Token, k *StatusKMSKey, hsmByID map[string]*hsm.Key) string {
	hk := hsmByID[k.currentHSMKeyID()]
	if hk == nil || k.TokenSerial != tok.Identity().Serial {
		return "not checked (HSM key not in this token)"
	}
	if k.KeyState != string(types.KeyStateEnabled) {
		return "not checked (key is " + k.KeyState + ")"
	}
	spec, err := ParseKeySpec(k.KeySpec)
	if err != nil {
		return "not checked (" + err.Error() + ")"
	}
	v, err := Verify(ctx, api, tok, k.KeyId, hk, spec)
	switch {
	case err != nil:
		return "FAILED: " + err.Error()
	case v.MaterialConfirmed:
		return proofConfirmed + v.Summary
	default:
		return "works: " + v.Summary
	}
}

// linkedBy is what a KMS key's link to its HSM key rests on, from its
// proof: only a confirmed material (a MAC, signature or public key KMS
// and the HSM computed alike) is more than the tags; an Encrypt/Decrypt
// round trip ("works") proves KMS holds some material, not the HSM's.
func linkedBy(proof string) string {
	if strings.HasPrefix(proof, proofConfirmed) {
		return kmsimport.LinkedByVerified
	}
	return kmsimport.LinkedByTags
}

// proofConfirmed starts the Proof of a key whose material KMS confirmed.
const proofConfirmed = "confirmed: "

// currentHSMKeyID is the HSM key behind the current material.
func (k *StatusKMSKey) currentHSMKeyID() string {
	for _, m := range k.Materials {
		if m.State == string(types.KeyMaterialStateCurrent) && m.HSMKeyID != "" {
			return m.HSMKeyID
		}
	}
	return k.HSMKeyID
}

// join fills days to expiry, links both sides and finds the problems.
func (st *Status) join(now time.Time, o StatusOptions, hsmByID map[string]*hsm.Key) {
	serial := ""
	if st.Token != nil {
		serial = st.Token.Serial
	}
	warn := time.Duration(o.WarnDays) * 24 * time.Hour
	byHSM := map[string][]string{}
	for i := range st.KMSKeys {
		k := &st.KMSKeys[i]
		var earliest *time.Time
		for _, m := range k.Materials {
			if m.ValidTo != nil && m.ImportState != string(types.ImportStatePendingImport) && (earliest == nil || m.ValidTo.Before(*earliest)) {
				earliest = m.ValidTo
			}
		}
		if earliest != nil {
			d := DaysLeft(now, *earliest)
			k.ValidTo, k.DaysToExpiry = earliest, &d
			if earliest.Sub(now) < warn {
				st.add(Problem{Kind: ProblemExpiring, Severity: HealthExpiring, KeyId: k.KeyId, Region: k.Region, HSMKeyID: k.HSMKeyID,
					Message: fmt.Sprintf("KMS key %s (%s): key material expires in %d days, at %s", k.KeyId, k.Region, d, earliest.Format(time.RFC3339)),
					Fix:     o.fix(o.tokenOf(k, st.Token), "renew", "--kms-key-id", k.KeyId, "--within", strconv.Itoa(o.WarnDays))})
			}
		}
		if k.TokenSerial != "" {
			first := k.TokenSerial + "/" + k.HSMKeyID
			if !contains(byHSM[first], k.KeyId) {
				byHSM[first] = append(byHSM[first], k.KeyId)
			}
		}
		onToken := st.Token != nil && k.TokenSerial == serial
		missing := []string{}
		if onToken {
			for _, id := range k.hsmKeyIDs() {
				if hsmByID[id] == nil {
					missing = append(missing, id)
				}
			}
			for i := range st.HSMKeys {
				if contains(k.hsmKeyIDs(), st.HSMKeys[i].ID) && !contains(st.HSMKeys[i].KMSKeys, k.KeyId) {
					st.HSMKeys[i].KMSKeys = append(st.HSMKeys[i].KMSKeys, k.KeyId)
				}
			}
		}
		if len(missing) > 0 {
			st.add(Problem{Kind: ProblemMissingHSMKey, Severity: HealthBroken, KeyId: k.KeyId, Region: k.Region, HSMKeyID: strings.Join(missing, ","),
				Message: fmt.Sprintf("KMS key %s (%s) is linked to HSM key CKA_ID %s (label %q), which token serial %s does not hold: once its material expires or is deleted it can never be imported again", k.KeyId, k.Region, strings.Join(missing, ", "), k.HSMKeyLabel, serial),
				Fix:     "restore the HSM key from the HSM's backup, or plan to replace the KMS key with kmsbridge rotate"})
		}
		if k.KeyState == string(types.KeyStatePendingImport) {
			p := Problem{Kind: ProblemPendingImport, Severity: HealthBroken, KeyId: k.KeyId, Region: k.Region, HSMKeyID: k.HSMKeyID,
				Message: fmt.Sprintf("KMS key %s (%s) is PendingImport: its material expired or was deleted, and it cannot be used", k.KeyId, k.Region)}
			switch {
			case onToken && len(missing) == 0:
				p.Message += fmt.Sprintf("; the HSM still holds its material (CKA_ID %s)", k.HSMKeyID)
				p.Fix = o.fix(o.tokenOf(k, st.Token), "renew", "--kms-key-id", k.KeyId)
			case !onToken:
				p.Message += fmt.Sprintf("; its HSM copy is on token serial %s, not checked here", k.TokenSerial)
				p.Fix = o.fix(o.tokenOf(k, st.Token), "renew", "--kms-key-id", k.KeyId)
			}
			st.add(p)
		}
		for _, m := range k.Materials {
			if strings.HasPrefix(m.State, "PENDING") {
				st.add(Problem{Kind: ProblemRotationPending, Severity: HealthExpiring, KeyId: k.KeyId, Region: k.Region, HSMKeyID: m.HSMKeyID,
					Message: fmt.Sprintf("KMS key %s (%s): %s is %s: a rotation was started and not finished", k.KeyId, k.Region, describeMaterial(m), m.State),
					Fix:     o.fix(o.tokenOf(k, st.Token), "rotate", "--kms-key-id", k.KeyId) + "   # finishes the rotation under way"})
			}
		}
		if strings.HasPrefix(k.Proof, "FAILED") {
			st.add(Problem{Kind: ProblemVerification, Severity: HealthBroken, KeyId: k.KeyId, Region: k.Region, HSMKeyID: k.HSMKeyID, Message: k.Proof})
		}
	}
	var twice []string
	for link, ids := range byHSM {
		if len(ids) > 1 {
			twice = append(twice, link)
		}
	}
	sort.Strings(twice)
	for _, link := range twice {
		serial, id, _ := strings.Cut(link, "/")
		ids := byHSM[link]
		st.add(Problem{Kind: ProblemLinkedTwice, Severity: HealthBroken, HSMKeyID: id, KeyId: strings.Join(ids, ","),
			Message: fmt.Sprintf("HSM key CKA_ID %s (token serial %s) is linked to %d KMS keys: %s; KMS keys that share material are usually a half-finished import run twice", id, serial, len(ids), strings.Join(ids, ", ")),
			Fix:     "keep the key in use and schedule the others' deletion (aws kms schedule-key-deletion), after checking nothing uses them"})
	}
	st.Health = HealthOK
	for _, p := range st.Problems {
		if worse(p.Severity, st.Health) {
			st.Health = p.Severity
		}
	}
}

// tokenOf is how a fix for k chooses its token: the operator's own flags
// when this run read the token that holds k's material, otherwise that
// token's serial from k's link tags.
func (o StatusOptions) tokenOf(k *StatusKMSKey, read *hsm.TokenIdentity) []string {
	if read != nil && k.TokenSerial == read.Serial && len(o.TokenFlags) > 0 {
		return o.TokenFlags
	}
	return []string{"--token-serial", k.TokenSerial}
}

// fix is the command that runs cmd on the token tokenFlags choose and on
// this run's KMS account, quoted to run as printed.
func (o StatusOptions) fix(tokenFlags []string, cmd string, args ...string) string {
	all := append(append(append([]string{cmd}, tokenFlags...), o.KMSFlags...), args...)
	return kmsimport.Command(all...)
}

// hsmKeyIDs lists every HSM key that backs one of k's materials.
func (k *StatusKMSKey) hsmKeyIDs() []string {
	ids := []string{k.HSMKeyID}
	for _, m := range k.Materials {
		if m.HSMKeyID != "" && !contains(ids, m.HSMKeyID) {
			ids = append(ids, m.HSMKeyID)
		}
	}
	return ids
}

func (st *Status) add(p Problem) { st.Problems = append(st.Problems, p) }

func worse(a, b Health) bool {
	rank := map[Health]int{HealthOK: 0, HealthExpiring: 1, HealthBroken: 2}
	return rank[a] > rank[b]
}

func keyTypeName(k *hsm.Key) string {
	switch k.KeyType {
	case pkcs11.CKK_AES:
		return fmt.Sprintf("AES-%d", k.ValueLen*8)
	case pkcs11.CKK_GENERIC_SECRET:
		return fmt.Sprintf("generic secret %d bytes", k.ValueLen)
	case pkcs11.CKK_RSA:
		return fmt.Sprintf("RSA-%d", k.ModulusBits)
	case pkcs11.CKK_EC:
		if k.Curve != nil {
			return "EC " + k.Curve.Name
		}
		return "EC"
	}
	return fmt.Sprintf("key type %#x", k.KeyType)
}
