package kmsimport

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// checkKMS proves the endpoint and credentials work and that the KMS side
// can take the import, before anything is created.
func (r *run) checkKMS(ctx context.Context) (string, error) {
	if r.req.Alias != "" {
		target, err := r.findAlias(ctx, r.req.Alias)
		if err != nil {
			return "", err
		}
		r.aliasTarget = target
	} else {
		// A cheap read that fails now, not after the HSM key is made, when
		// the endpoint, region or credentials are wrong.
		if _, err := r.im.KMS.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(1)}); err != nil {
			return "", explain("ListAliases", err)
		}
	}
	if r.req.KMSKeyID == "" {
		if r.aliasTarget != "" {
			return "", invalid("alias %s already points to KMS key %s: import into that key with --kms-key-id %s, or choose another --alias", r.req.Alias, r.aliasTarget, r.aliasTarget)
		}
		return "KMS is reachable; a new EXTERNAL key will be created", nil
	}
	out, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(r.req.KMSKeyID)})
	if err != nil {
		return "", explain("DescribeKey", err)
	}
	md := out.KeyMetadata
	r.existing = md
	id := aws.ToString(md.KeyId)
	switch {
	case md.Origin != types.OriginTypeExternal:
		return "", invalid("KMS key %s has origin %s, not EXTERNAL: KMS only accepts imported material into keys created with origin EXTERNAL; leave out --kms-key-id to create one", id, md.Origin)
	case md.KeySpec != r.spec.Name:
		return "", invalid("KMS key %s has key spec %s, but the HSM key is %s material (%s): choose the KMS key and HSM key that belong together", id, md.KeySpec, r.spec.Name, r.spec.HSM)
	case md.KeyState != types.KeyStatePendingImport && md.KeyState != types.KeyStateEnabled:
		return "", invalid("KMS key %s is %s: it accepts material only when PendingImport or Enabled (a key pending deletion must first be restored with aws kms cancel-key-deletion)", id, md.KeyState)
	case r.aliasTarget != "" && r.aliasTarget != id:
		return "", invalid("alias %s points to another KMS key (%s), not %s: choose another --alias", r.req.Alias, r.aliasTarget, id)
	}
	if err := r.checkLink(ctx, md); err != nil {
		return "", err
	}
	return fmt.Sprintf("KMS key %s is EXTERNAL, %s, and can take the material", id, md.KeyState), nil
}

// findAlias returns the key id alias points to, or "" when it is free. It
// is one DescribeKey, which takes an alias name, however many aliases the
// account holds.
func (r *run) findAlias(ctx context.Context, alias string) (string, error) {
	out, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	var nf *types.NotFoundException
	if errors.As(err, &nf) {
		return "", nil
	}
	if err != nil {
		return "", explain("DescribeKey", err)
	}
	return aws.ToString(out.KeyMetadata.KeyId), nil
}

// checkLink refuses an import into a KMS key that kmsbridge tagged as the
// copy of another HSM key: KMS would refuse the material anyway, after the
// wrap, with a less helpful message.
func (r *run) checkLink(ctx context.Context, md *types.KeyMetadata) error {
	keyID := aws.ToString(md.KeyId)
	tags, err := r.listTags(ctx, keyID)
	if err != nil {
		return err
	}
	linked, ok := tags[TagHSMKeyID]
	if r.req.Generate {
		// A key that once held material only ever accepts that material.
		if ok {
			return invalid("KMS key %s already holds material from HSM key CKA_ID %s (label %q, token serial %s): a newly generated key can never be imported into it; import that HSM key with --hsm-key-id %s, or leave out --kms-key-id to create a new KMS key",
				keyID, linked, tags[TagHSMKeyLabel], tags[TagTokenSerial], linked)
		}
		if md.KeyState == types.KeyStateEnabled {
			return invalid("KMS key %s already holds imported material: a newly generated key can never be imported into it; drop --generate and choose the HSM key it came from, or leave out --kms-key-id", keyID)
		}
		return nil
	}
	if !ok || r.key == nil || linked == r.key.IDHex() {
		return nil
	}
	return invalid("KMS key %s holds material from HSM key CKA_ID %s (label %q, token serial %s), not from the chosen HSM key %q (CKA_ID %s): KMS only re-accepts the same material; choose --hsm-key-id %s",
		keyID, linked, tags[TagHSMKeyLabel], tags[TagTokenSerial], r.key.Label, r.key.IDHex(), linked)
}

func (r *run) listTags(ctx context.Context, keyID string) (map[string]string, error) {
	tags := map[string]string{}
	p := kms.NewListResourceTagsPaginator(r.im.KMS, &kms.ListResourceTagsInput{KeyId: aws.String(keyID)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, explain("ListResourceTags", err)
		}
		for _, t := range page.Tags {
			tags[aws.ToString(t.TagKey)] = aws.ToString(t.TagValue)
		}
	}
	return tags, nil
}

// linkTags are the tags that link the KMS key to the HSM key.
func (r *run) linkTags() []types.Tag {
	tok := r.res.HSM.Token
	return []types.Tag{
		{TagKey: aws.String(TagHSMKeyID), TagValue: aws.String(r.key.IDHex())},
		{TagKey: aws.String(TagHSMKeyLabel), TagValue: aws.String(r.key.Label)},
		{TagKey: aws.String(TagTokenSerial), TagValue: aws.String(tok.Serial)},
		{TagKey: aws.String(TagTokenLabel), TagValue: aws.String(tok.Label)},
	}
}

func (r *run) createKey(ctx context.Context) (string, error) {
	if r.existing != nil {
		id := aws.ToString(r.existing.KeyId)
		r.res.KeyId, r.res.Arn = id, aws.ToString(r.existing.Arn)
		// Existing keys get the link tags too, so both sides can be found
		// from each other whichever way the key was made.
		tags := append(r.linkTags(), r.req.Tags...)
		if _, err := r.im.KMS.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tags}); err != nil {
			return "", explain("TagResource", err)
		}
		return fmt.Sprintf("using existing KMS key %s; tagged with HSM key CKA_ID %s", id, r.key.IDHex()), nil
	}
	out, err := r.im.KMS.CreateKey(ctx, &kms.CreateKeyInput{
		Origin:      types.OriginTypeExternal,
		KeySpec:     r.spec.Name,
		KeyUsage:    r.usage,
		Description: optional(r.req.Description),
		Tags:        append(r.linkTags(), r.req.Tags...),
	})
	if err != nil {
		return "", explain("CreateKey", err)
	}
	r.res.KeyId, r.res.Arn = aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
	r.res.CreatedKMSKey = true
	return fmt.Sprintf("created KMS key %s (origin EXTERNAL, PendingImport), tagged with HSM key CKA_ID %s", r.res.KeyId, r.key.IDHex()), nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func (r *run) getParameters(ctx context.Context) (string, error) {
	out, err := r.im.KMS.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId:             aws.String(r.res.KeyId),
		WrappingAlgorithm: r.wrapping.Algorithm,
		WrappingKeySpec:   r.req.WrappingKeySpec,
	})
	if err != nil {
		return "", explain("GetParametersForImport", err)
	}
	pub, err := ParseWrappingPublicKey(out.PublicKey, r.req.WrappingKeySpec)
	if err != nil {
		return "", err
	}
	r.pub, r.pubDER, r.token = pub, out.PublicKey, out.ImportToken
	r.res.WrappingPublicKeySHA256 = Fingerprint(out.PublicKey)
	if out.ParametersValidTo != nil {
		r.res.ParametersValidTo = out.ParametersValidTo.UTC()
	}
	return fmt.Sprintf("got %s wrapping public key SHA-256 %s and import token, valid until %s", r.req.WrappingKeySpec, r.res.WrappingPublicKeySHA256, r.res.ParametersValidTo.Format(time.RFC3339)), nil
}

// ParseWrappingPublicKey parses the DER SubjectPublicKeyInfo KMS returned
// and checks it is an RSA key of the size spec promises.
func ParseWrappingPublicKey(der []byte, spec types.WrappingKeySpec) (*rsa.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("KMS wrapping public key is not a DER SubjectPublicKeyInfo: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("KMS wrapping public key is a %T, not RSA", k)
	}
	if want := wrappingKeyBits(spec); pub.N.BitLen() != want {
		return nil, fmt.Errorf("KMS wrapping public key is RSA-%d, but %s was asked for", pub.N.BitLen(), spec)
	}
	return pub, nil
}

// Fingerprint is the lowercase hex SHA-256 of a DER public key, the value
// officers compare when they read it aloud.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func (r *run) importMaterial(ctx context.Context) (string, error) {
	in := &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(r.res.KeyId),
		ImportToken:          r.token,
		EncryptedKeyMaterial: r.wrapped,
		ExpirationModel:      r.req.Expiry.Model(),
	}
	if !r.req.Expiry.NoExpiry {
		// Whole seconds: KMS keeps no more, and some emulators reject fractions.
		in.ValidTo = aws.Time(r.req.Expiry.ValidTo.Truncate(time.Second))
	}
	out, err := r.im.KMS.ImportKeyMaterial(ctx, in)
	if err != nil {
		return "", explain("ImportKeyMaterial", err)
	}
	r.res.KeyMaterialId = aws.ToString(out.KeyMaterialId)
	exp := "does not expire"
	if r.res.ValidTo != nil {
		exp = "valid to " + r.res.ValidTo.Format(time.RFC3339)
	}
	return fmt.Sprintf("imported into KMS key %s: KeyMaterialId %s, %s", r.res.KeyId, r.res.KeyMaterialId, exp), nil
}

func (r *run) alias(ctx context.Context) (string, error) {
	r.res.AliasName = r.req.Alias
	if r.aliasTarget == r.res.KeyId {
		return fmt.Sprintf("alias %s already points to %s", r.req.Alias, r.res.KeyId), nil
	}
	if _, err := r.im.KMS.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(r.req.Alias), TargetKeyId: aws.String(r.res.KeyId)}); err != nil {
		return "", explain("CreateAlias", err)
	}
	return fmt.Sprintf("alias %s now points to %s", r.req.Alias, r.res.KeyId), nil
}
