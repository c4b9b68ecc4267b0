package aws

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// StepReplicate is the import step that makes and fills each replica of a
// multi-Region key.
const StepReplicate = "replicate"

// ReplicaResult is one replica of a multi-Region key an import made or
// filled: its Region, the wrap under that Region's own wrapping key, and
// what was verified.
type ReplicaResult struct {
	Region                     string `json:"Region"`
	KeyId                      string `json:"KeyId"`
	Arn                        string `json:"Arn"`
	Created                    bool   `json:"Created"`
	WrappingPublicKeySHA256    string `json:"WrappingPublicKeySha256"`
	EncryptedKeyMaterialSHA256 string `json:"EncryptedKeyMaterialSha256"`
	KeyMaterialId              string `json:"KeyMaterialId,omitempty"`
	AliasName                  string `json:"AliasName,omitempty"`
	Verification               string `json:"Verification"`
}

// checkReplicaRegions proves, before any change, that every replica
// Region answers and that the alias is free (or already the key's) there.
func (r *run) checkReplicaRegions(ctx context.Context) (string, error) {
	if !r.req.MultiRegion {
		return "", nil
	}
	if r.existing != nil {
		md := r.existing
		if md.MultiRegion == nil || !*md.MultiRegion || md.MultiRegionConfiguration == nil || md.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypePrimary {
			return "", invalid("--multi-region: KMS key %s is not a multi-Region primary key: KMS cannot make a key multi-Region later; leave out --kms-key-id to create one", aws.ToString(md.KeyId))
		}
	}
	for _, rg := range r.im.Replicas {
		if r.req.Alias != "" {
			target, err := (&run{im: &Importer{KMS: rg.KMS}}).findAlias(ctx, r.req.Alias)
			if err != nil {
				return "", fmt.Errorf("replica Region %s: %w", rg.Region, err)
			}
			if target != "" && (r.existing == nil || target != aws.ToString(r.existing.KeyId)) {
				return "", invalid("alias %s already points to KMS key %s in replica Region %s: choose another --alias", r.req.Alias, target, rg.Region)
			}
		} else if _, err := rg.KMS.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(1)}); err != nil {
			return "", fmt.Errorf("replica Region %s: %w", rg.Region, explain("ListAliases", err))
		}
	}
	return fmt.Sprintf("; replica Regions %s answer", regionNames(r.im.Replicas)), nil
}

// replicate makes each replica (unless an earlier run did), waits until it
// exists, imports the same material into it under its own Region's
// wrapping key, gives it the alias, and verifies it.
func (r *run) replicate(ctx context.Context) (string, error) {
	d, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(r.res.KeyId)})
	if err != nil {
		return "", explain("DescribeKey", err)
	}
	have := map[string]bool{}
	if c := d.KeyMetadata.MultiRegionConfiguration; c != nil {
		for _, rk := range c.ReplicaKeys {
			have[aws.ToString(rk.Region)] = true
		}
	}
	for _, rg := range r.im.Replicas {
		rr := ReplicaResult{Region: rg.Region, KeyId: r.res.KeyId}
		if !have[rg.Region] {
			facts, err := r.do(ctx, change{
				op:     "ReplicateKey",
				target: map[string]string{"KmsKeyId": r.res.KeyId, "ReplicaRegion": rg.Region},
				call: func(ctx context.Context, _ string) (map[string]string, error) {
					out, err := r.im.KMS.ReplicateKey(ctx, &kms.ReplicateKeyInput{
						KeyId: aws.String(r.res.KeyId), ReplicaRegion: aws.String(rg.Region),
						Description: optional(r.req.Description), Tags: append(r.linkTags(), r.req.Tags...),
					})
					if err != nil {
						return nil, err
					}
					return map[string]string{"ReplicaArn": aws.ToString(out.ReplicaKeyMetadata.Arn)}, nil
				},
				// A lost answer: the primary lists the replica if it took.
				settle: func(ctx context.Context, _ string) (bool, map[string]string, error) {
					d, err := r.im.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(r.res.KeyId)})
					if err != nil {
						return false, nil, explain("DescribeKey", err)
					}
					if c := d.KeyMetadata.MultiRegionConfiguration; c != nil {
						for _, rk := range c.ReplicaKeys {
							if aws.ToString(rk.Region) == rg.Region {
								return true, map[string]string{"ReplicaArn": aws.ToString(rk.Arn)}, nil
							}
						}
					}
					return false, nil, nil
				},
			})
			if err != nil {
				return "", fmt.Errorf("replica Region %s: %w", rg.Region, err)
			}
			rr.Created, rr.Arn = true, facts["ReplicaArn"]
			r.res.Replicas = append(r.res.Replicas, rr)
			r.emit(StepReplicate, fmt.Sprintf("created replica %s in %s", rr.KeyId, rg.Region), nil)
		} else {
			r.res.Replicas = append(r.res.Replicas, rr)
		}
		if err := r.fillReplica(ctx, rg, &r.res.Replicas[len(r.res.Replicas)-1]); err != nil {
			return "", fmt.Errorf("replica Region %s: %w", rg.Region, err)
		}
	}
	return fmt.Sprintf("the same material is imported and verified in the replicas in %s", regionNames(r.im.Replicas)), nil
}

// fillReplica imports the primary's material into one replica.
func (r *run) fillReplica(ctx context.Context, rg Regional, rr *ReplicaResult) error {
	md, err := r.waitReplica(ctx, rg.KMS, r.res.KeyId, rr.Created)
	if err != nil {
		return err
	}
	rr.Arn = aws.ToString(md.Arn)
	sub := *r.im
	sub.KMS, sub.Observe = rg.KMS, nil
	req := *r.req
	req.KMSKeyID = r.res.KeyId
	if r.spec.Name == types.KeySpecSymmetricDefault && r.res.KeyMaterialId != "" {
		req.ImportType, req.KeyMaterialId = types.ImportTypeExistingKeyMaterial, r.res.KeyMaterialId
	}
	rep := &run{im: &sub, req: &req, res: &Result{KeyId: r.res.KeyId}, wrapping: r.wrapping, key: r.key, spec: r.spec, usage: r.usage}
	rep.res.HSM = r.res.HSM
	rep.fresh = rr.Created
	rep.res.ValidTo, rep.res.ExpirationModel = r.res.ValidTo, r.res.ExpirationModel
	for _, f := range []func(context.Context) (string, error){rep.getParameters, rep.wrap, rep.importMaterial} {
		if _, err := f(ctx); err != nil {
			return err
		}
	}
	rr.WrappingPublicKeySHA256 = rep.res.WrappingPublicKeySHA256
	rr.EncryptedKeyMaterialSHA256 = rep.res.EncryptedKeyMaterialSHA256
	rr.KeyMaterialId = rep.res.KeyMaterialId
	r.emit(StepReplicate, fmt.Sprintf("imported the same material into replica %s in %s (wrapped under that Region's key %s)", r.res.KeyId, rg.Region, shortID(rr.WrappingPublicKeySHA256)), nil)
	if r.req.Alias != "" {
		target, err := rep.findAlias(ctx, r.req.Alias)
		if err != nil {
			return err
		}
		if target == "" {
			if err := r.createAliasOnce(ctx, rg.KMS, rep, map[string]string{"AliasName": r.req.Alias, "KmsKeyId": r.res.KeyId, "Region": rg.Region}); err != nil {
				return err
			}
		}
		rr.AliasName = r.req.Alias
	}
	v, err := Verify(ctx, rg.KMS, r.im.Token, r.res.KeyId, r.key, r.spec)
	if err != nil {
		return err
	}
	rr.Verification = v.Summary
	return nil
}

// waitReplica waits, with backoff, while a new replica is Creating; a
// replica this run made (fresh) may also be unknown to its Region for a
// moment (NotFoundException), which is waited out too and said so.
func (r *run) waitReplica(ctx context.Context, api API, keyID string, fresh bool) (*types.KeyMetadata, error) {
	poll := 500 * time.Millisecond
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var md *types.KeyMetadata
		var err error
		if fresh {
			md, err = describeFresh(ctx, r, api, keyID, "in the replica's Region, whose ReplicateKey this run made moments ago")
		} else {
			var d *kms.DescribeKeyOutput
			if d, err = api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)}); err == nil {
				md = d.KeyMetadata
			}
			err = explain("DescribeKey", err)
		}
		if err != nil {
			return nil, err
		}
		if md.KeyState != types.KeyStateCreating {
			if note := r.consistencyNote(); note != "" {
				r.emit(StepReplicate, "the replica in its Region is known"+note, nil)
			}
			return md, nil
		}
		r.logInfo("the new replica is Creating; waiting", "kmsKeyId", keyID, "retryIn", poll.String())
		if time.Now().After(deadline) {
			return nil, &kmsimport.KMSError{Op: "DescribeKey", Message: "the replica is still Creating after 5 minutes", Advice: "run the same import again later: it finds the replica and continues", Transient: true}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
		if poll *= 2; poll > 10*time.Second {
			poll = 10 * time.Second
		}
	}
}

// replicaRegionsNote names the replica Regions for a summary line.
func replicaRegionsNote(rs []ReplicaResult) string {
	var n []string
	for _, r := range rs {
		n = append(n, r.Region)
	}
	return strings.Join(n, ", ")
}
