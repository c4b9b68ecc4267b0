package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/ownership"
)

// checkKMS proves the endpoint and credentials work and that the KMS side
// can take the import, before anything is created.
func (r *run) checkKMS(ctx context.Context) (string, error) {
	msg, err := r.checkHomeKMS(ctx)
	if err != nil {
		return "", err
	}
	more, err := r.checkReplicaRegions(ctx)
	return msg + more, err
}

func (r *run) checkHomeKMS(ctx context.Context) (string, error) {
	switch {
	case r.req.Alias != "" && r.req.AliasFree:
		// The caller's plan found the alias free, with a request that also
		// showed KMS reachable.
	case r.req.Alias != "":
		target, err := r.findAlias(ctx, r.req.Alias)
		if err != nil {
			return "", err
		}
		r.aliasTarget = target
	default:
		// A cheap read that fails now, not after the HSM key is made, when
		// the endpoint, region or credentials are wrong.
		if _, err := r.im.KMS.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(1)}); err != nil {
			return "", explain("ListAliases", err)
		}
	}
	if r.req.KMSKeyID == "" && r.key != nil {
		if err := r.resumeLinked(ctx); err != nil {
			return "", err
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

// resumeLinked asks the ownership authority which KMS keys already hold
// the HSM key's material. The one this host's journal shows kmsbridge
// making is taken up (an earlier run of this import made it, or was
// interrupted after it); several are refused; a key that carries the link
// tags but that the journal does not show kmsbridge making is refused
// unless adopted on purpose (--adopt); with AllowSecondKMSKey a new one
// is made all the same, and the result says so.
func (r *run) resumeLinked(ctx context.Context) error {
	owner := r.owner()
	links, err := owner.LinkedKMSKeys(ctx, r.view(), r.key.IDHex())
	if err != nil {
		return err
	}
	if !links.Searched {
		r.logInfo("the KMS endpoint offers no search by tag (Resource Groups Tagging API): KMS keys made from this HSM key on another host were not looked for", "hsmKeyId", r.key.IDHex())
	}
	ids := links.All()
	if len(ids) == 0 {
		return nil
	}
	if r.im.AllowSecondKMSKey {
		msg := fmt.Sprintf("HSM key CKA_ID %s is already linked to KMS key(s) %s; a further KMS key is created because --allow-second-kms-key was given", r.key.IDHex(), strings.Join(ids, ", "))
		r.res.Warnings = append(r.res.Warnings, msg)
		if err := r.im.Journal.Note(r.command(), "allow-second-kms-key", map[string]string{"HsmKeyId": r.key.IDHex(), "LinkedKmsKeyIds": strings.Join(ids, ",")}); err != nil {
			return fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
		}
		return nil
	}
	if len(ids) > 1 {
		return invalid("HSM key CKA_ID %s (token serial %s) is already linked to %d KMS keys: %s; finish with one of them (--kms-key-id ID), or add --allow-second-kms-key to create yet another on purpose", r.key.IDHex(), r.res.HSM.Token.Serial, len(ids), strings.Join(ids, ", "))
	}
	id, how := ids[0], "already linked to this HSM key by an earlier run"
	if len(links.Foreign) == 1 {
		k, err := r.view().Key(ctx, id)
		if err != nil {
			return err
		}
		if err := owner.KMSKeyOurs(k, r.key.IDHex(), "run the same kmsbridge "+r.command()+" again with --adopt added (or with --allow-second-kms-key to leave it alone and create another KMS key)"); err != nil {
			return err
		}
		how = "adopted with --adopt"
	}
	r.req.KMSKeyID = id
	r.resumed = append(r.resumed, fmt.Sprintf("KMS key %s, %s", id, how))
	r.logInfo("resuming: KMS key already linked to this HSM key", "kmsKeyId", id, "hsmKeyId", r.key.IDHex())
	return r.im.Journal.Note(r.command(), "resume", map[string]string{"KmsKeyId": id, "HsmKeyId": r.key.IDHex()})
}

// findAlias returns the key id alias points to, or "" when it is free. It
// is one DescribeKey, which takes an alias name, however many aliases the
// account holds.
func (r *run) findAlias(ctx context.Context, alias string) (string, error) {
	out, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "NotFoundException" {
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
	if !ok || r.key == nil {
		return nil
	}
	m, err := r.materialOfKey(ctx, md, tags)
	if err != nil {
		return err
	}
	r.material = m
	r.linkedHere = tags[TagTokenSerial] == r.res.HSM.Token.Serial
	return nil
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
		have, err := r.listTags(ctx, id)
		if err != nil {
			return "", err
		}
		tags := append(r.linkTags(), r.req.Tags...)
		if linked := have[TagHSMKeyID]; linked != "" && !strings.EqualFold(linked, r.key.IDHex()) {
			// A later generation's HSM key (checkLink found the material
			// it backs): the link tags name the first generation and stay.
			tags = r.req.Tags
		}
		if hasTags(have, tags) {
			// Named with --kms-key-id and already linked: the operator's
			// choice makes it kmsbridge's from now on, and the journal
			// says so, so that renew and rotate can prove it.
			k := &ownership.KMSKey{ID: id, Usable: true, Tags: have}
			if r.owner().KMSKeyOurs(k, r.key.IDHex(), "") != nil {
				if err := r.owner().NoteAdoptKMS(k, r.key.IDHex()); err != nil {
					return "", fmt.Errorf("%w: %v", kmsimport.ErrJournal, err)
				}
			}
			return fmt.Sprintf("using existing KMS key %s; it already carries the link to HSM key CKA_ID %s", id, r.key.IDHex()), nil
		}
		_, err = r.do(ctx, change{
			op:     "TagResource",
			target: map[string]string{"KmsKeyId": id, "HsmKeyId": r.key.IDHex()},
			call: func(ctx context.Context, _ string) (map[string]string, error) {
				_, err := r.im.KMS.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tags})
				return nil, err
			},
			// Tagging again with the same tags changes nothing more.
		})
		if err != nil {
			return "", err
		}
		r.tagged = true
		return fmt.Sprintf("using existing KMS key %s; tagged with HSM key CKA_ID %s", id, r.key.IDHex()), nil
	}
	return r.createNewKey(ctx, append(r.linkTags(), r.req.Tags...), map[string]string{"HsmKeyId": r.key.IDHex(), "TokenSerial": r.res.HSM.Token.Serial})
}

// createNewKey creates the EXTERNAL key with tags and the attempt tag, in
// one CreateKey, journaled; a lost answer is settled by finding the key
// by its attempt tag.
func (r *run) createNewKey(ctx context.Context, tags []types.Tag, target map[string]string) (string, error) {
	target["KeySpec"] = string(r.spec.Name)
	_, err := r.do(ctx, change{
		op:     "CreateKey",
		target: target,
		call: func(ctx context.Context, attempt string) (map[string]string, error) {
			out, err := r.im.KMS.CreateKey(ctx, &kms.CreateKeyInput{
				Origin:      types.OriginTypeExternal,
				KeySpec:     r.spec.Name,
				KeyUsage:    r.usage,
				Description: optional(r.req.Description),
				Tags:        append(append([]types.Tag(nil), tags...), types.Tag{TagKey: aws.String(TagAttempt), TagValue: aws.String(attempt)}),
				MultiRegion: aws.Bool(r.req.MultiRegion),
			})
			if err != nil {
				return nil, err
			}
			r.res.KeyId, r.res.Arn = aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
			r.res.CreatedKMSKey, r.fresh = true, true
			return map[string]string{"KmsKeyId": r.res.KeyId, "KmsKeyArn": r.res.Arn}, nil
		},
		settle: func(ctx context.Context, attempt string) (bool, map[string]string, error) {
			return r.adoptAttempt(ctx, attempt)
		},
	})
	if err != nil {
		return "", err
	}
	if r.key == nil {
		return fmt.Sprintf("created KMS key %s (origin EXTERNAL, PendingImport)", r.res.KeyId), nil
	}
	return fmt.Sprintf("created KMS key %s (origin EXTERNAL, PendingImport), tagged with HSM key CKA_ID %s", r.res.KeyId, r.key.IDHex()), nil
}

// adoptAttempt finds the key an earlier CreateKey attempt made, by its
// attempt tag, and takes it as this run's key. A key not listed within the
// listing window stops the run (findAttemptKey): never a second CreateKey
// on the strength of ListKeys not listing a key made moments ago.
func (r *run) adoptAttempt(ctx context.Context, attempt string) (bool, map[string]string, error) {
	id, err := r.findAttemptKey(ctx, attempt)
	if err != nil || id == "" {
		return false, nil, err
	}
	md, err := describeFresh(ctx, r, r.im.KMS, id, "that this run's CreateKey made moments ago")
	if err != nil {
		return false, nil, err
	}
	r.res.KeyId, r.res.Arn = id, aws.ToString(md.Arn)
	r.res.CreatedKMSKey, r.fresh = true, true
	return true, map[string]string{"KmsKeyId": id, "KmsKeyArn": r.res.Arn}, nil
}

// hasTags says whether have holds every tag of want, with its value.
func hasTags(have map[string]string, want []types.Tag) bool {
	for _, t := range want {
		if v, ok := have[aws.ToString(t.TagKey)]; !ok || v != aws.ToString(t.TagValue) {
			return false
		}
	}
	return true
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func (r *run) getParameters(ctx context.Context) (string, error) {
	in := &kms.GetParametersForImportInput{
		KeyId:             aws.String(r.res.KeyId),
		WrappingAlgorithm: r.wrapping.Algorithm,
		WrappingKeySpec:   r.req.WrappingKeySpec,
	}
	get := func(ctx context.Context) (*kms.GetParametersForImportOutput, error) {
		return r.im.KMS.GetParametersForImport(ctx, in)
	}
	var out *kms.GetParametersForImportOutput
	var err error
	if r.fresh {
		out, err = untilKnown(ctx, r, "GetParametersForImport", r.res.KeyId, "that this run created moments ago", get)
	} else {
		out, err = get(ctx)
	}
	if err != nil {
		return "", explain("GetParametersForImport", err)
	}
	pub, err := kmsimport.ParseWrappingPublicKey(out.PublicKey, kmsimport.WrappingKeySpec(r.req.WrappingKeySpec))
	if err != nil {
		return "", err
	}
	r.pub, r.pubDER, r.token = pub, out.PublicKey, out.ImportToken
	r.res.WrappingPublicKeySHA256 = kmsimport.Fingerprint(out.PublicKey)
	if out.ParametersValidTo != nil {
		r.res.ParametersValidTo = out.ParametersValidTo.UTC()
	}
	from := ""
	if l, ok := r.im.KMS.(Located); ok {
		ep := l.Endpoint()
		r.res.KMSEndpoint = &ep
		from = " from " + ep.String()
	}
	return fmt.Sprintf("got %s wrapping public key SHA-256 %s and import token, valid until %s%s%s", r.req.WrappingKeySpec, r.res.WrappingPublicKeySHA256, r.res.ParametersValidTo.Format(time.RFC3339), from, r.consistencyNote()), nil
}

// alreadyImported says whether the existing KMS key already holds this
// HSM key's material with the expiry asked for: then a re-run has nothing
// to import, and the verify step proves the material is there.
//
// The expiry compared is the material's own (ListKeyRotations), not the
// key's, which is the earliest of all its materials.
func (r *run) alreadyImported() bool {
	md, m := r.existing, r.material
	if md == nil || m == nil || !r.linkedHere || md.KeyState != types.KeyStateEnabled ||
		m.ImportState != string(types.ImportStateImported) || m.ExpirationModel != string(r.req.Expiry.Model()) {
		return false
	}
	if r.req.Expiry.NoExpiry {
		return true
	}
	return m.ValidTo != nil && m.ValidTo.Equal(r.req.Expiry.ValidTo.Truncate(time.Second))
}

// importInput is the ImportKeyMaterial request of this run. A re-import
// into a symmetric key that already has material names the material the
// HSM key backs, EXISTING_KEY_MATERIAL with its KeyMaterialId, as KMS
// requires for any material but the current one; callers that chose an
// ImportType (rotate, renew) keep theirs.
func (r *run) importInput() *kms.ImportKeyMaterialInput {
	in := &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(r.res.KeyId),
		ImportToken:          r.token,
		EncryptedKeyMaterial: r.wrapped,
		ExpirationModel:      r.req.Expiry.Model(),
		ImportType:           r.req.ImportType,
		KeyMaterialId:        optional(r.req.KeyMaterialId),
	}
	if m := r.material; in.ImportType == "" && in.KeyMaterialId == nil && m != nil && m.KeyMaterialId != "" && r.spec.Name == types.KeySpecSymmetricDefault {
		in.ImportType, in.KeyMaterialId = types.ImportTypeExistingKeyMaterial, aws.String(m.KeyMaterialId)
	}
	return in
}

func (r *run) importMaterial(ctx context.Context) (string, error) {
	if r.alreadyImported() {
		r.res.KeyMaterialId = r.material.KeyMaterialId
		return fmt.Sprintf("KMS key %s is Enabled and its material %s, backed by HSM key CKA_ID %s, is imported with the expiry asked for: an earlier run imported it; not importing again", r.res.KeyId, shortID(r.material.KeyMaterialId), r.key.IDHex()), nil
	}
	in := r.importInput()
	if r.req.KeyMaterialDescription != "" {
		in.KeyMaterialDescription = aws.String(r.req.KeyMaterialDescription)
	}
	if !r.req.Expiry.NoExpiry {
		// Whole seconds: KMS keeps no more, and some emulators reject fractions.
		in.ValidTo = aws.Time(r.req.Expiry.ValidTo.Truncate(time.Second))
	}
	facts, err := r.do(ctx, change{
		op:     "ImportKeyMaterial",
		target: map[string]string{"KmsKeyId": r.res.KeyId, "EncryptedKeyMaterialSha256": r.res.EncryptedKeyMaterialSHA256},
		call: func(ctx context.Context, _ string) (map[string]string, error) {
			out, err := r.im.KMS.ImportKeyMaterial(ctx, in)
			if err != nil {
				return nil, err
			}
			return map[string]string{"KeyMaterialId": aws.ToString(out.KeyMaterialId)}, nil
		},
		// The same material imported again is harmless, so a lost
		// answer is settled by the key's state: Enabled means it took.
		settle: func(ctx context.Context, _ string) (bool, map[string]string, error) {
			if in.ImportType == types.ImportTypeNewKeyMaterial || in.KeyMaterialId != nil {
				// Rotation and renewal: an Enabled key says nothing about
				// this material; its entry in ListKeyRotations does.
				return settleMaterial(ctx, r.im.KMS, in)
			}
			out, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(r.res.KeyId)})
			if err != nil {
				return false, nil, explain("DescribeKey", err)
			}
			if out.KeyMetadata.KeyState != types.KeyStateEnabled {
				return false, nil, nil
			}
			return true, map[string]string{"KeyMaterialId": aws.ToString(out.KeyMetadata.CurrentKeyMaterialId)}, nil
		},
	})
	if err != nil {
		return "", err
	}
	r.res.KeyMaterialId = facts["KeyMaterialId"]
	if r.res.KeyMaterialId == "" {
		r.res.KeyMaterialId = "(not reported)"
	}
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
	if err := r.createAliasOnce(ctx, r.im.KMS, r, map[string]string{"AliasName": r.req.Alias, "KmsKeyId": r.res.KeyId}); err != nil {
		return "", err
	}
	return fmt.Sprintf("alias %s now points to %s", r.req.Alias, r.res.KeyId), nil
}

// createAliasOnce points the request's alias at the run's KMS key through
// api, as a journaled change: a lost answer is settled by looking where
// the alias points (with lookup, a run on the same Region's client), and
// an AlreadyExistsException counts as done when an earlier attempt whose
// answer was lost made it point here.
func (r *run) createAliasOnce(ctx context.Context, api API, lookup *run, target map[string]string) error {
	pointsHere := func(ctx context.Context, _ string) (bool, map[string]string, error) {
		to, err := lookup.findAlias(ctx, r.req.Alias)
		if err != nil {
			return false, nil, err
		}
		if to != "" && to != r.res.KeyId {
			return false, nil, invalid("alias %s now points to KMS key %s, not %s", r.req.Alias, to, r.res.KeyId)
		}
		return to == r.res.KeyId, nil, nil
	}
	_, err := r.do(ctx, change{
		op:     "CreateAlias",
		target: target,
		call: func(ctx context.Context, attempt string) (map[string]string, error) {
			_, err := api.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(r.req.Alias), TargetKeyId: aws.String(r.res.KeyId)})
			var ke smithy.APIError
			if errors.As(err, &ke) && ke.ErrorCode() == "AlreadyExistsException" {
				if ok, _, ferr := pointsHere(ctx, attempt); ferr == nil && ok {
					return nil, nil
				}
			}
			return nil, err
		},
		settle: pointsHere,
	})
	return err
}
