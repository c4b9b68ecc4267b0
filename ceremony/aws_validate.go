package ceremony

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/awsregions"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// The AWS KMS part of a ceremony file: the kms section's checks and a
// key's checks against KMS's rules.

func (k KMSConfig) validate(c *checker) {
	switch {
	case k.Region == "":
		c.add("kms.region", "is required: the AWS region the keys are created in, e.g. eu-west-1; it is never taken from the environment, so reviewers see it")
	case awsregions.Problem(k.Region) != "":
		c.add("kms.region", "%s", awsregions.Problem(k.Region))
	case strings.HasPrefix(k.Region, "cn-"):
		c.add("kms.region", "%q is an AWS China Region, which kmsbridge does not support (SM2 wrapping)", k.Region)
	}
	if k.Endpoint != "" {
		u, err := url.Parse(k.Endpoint)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			c.add("kms.endpoint", "must be a URL like https://kms.eu-west-1.amazonaws.com or http://127.0.0.1:4599 (or remove it to use AWS's endpoint)")
		case u.User != nil:
			c.add("kms.endpoint", "must not carry credentials: remove the user:password@ part and use kms.profile or the usual AWS credential chain")
		}
	}
	if k.AllowEndpoint != "" {
		u, err := url.Parse(k.AllowEndpoint)
		e, _ := url.Parse(k.Endpoint)
		switch {
		case k.Endpoint == "":
			c.add("kms.allow-endpoint", "must repeat the endpoint named in kms.endpoint, which is missing: add kms.endpoint with the same URL, or remove both to use AWS's endpoint")
		case err != nil || e == nil || !strings.EqualFold(u.Scheme, e.Scheme) || !strings.EqualFold(u.Host, e.Host):
			c.add("kms.allow-endpoint", "%q does not match kms.endpoint %q: confirm exactly the endpoint named", k.AllowEndpoint, k.Endpoint)
		}
	}
}

// validateAWS checks key k, which goes to AWS KMS, at path: the HSM
// key's fields and every AWS KMS field, against KMS's own rules.
func (k Key) validateAWS(c *checker, path string, wrapWithTrusted *bool, now time.Time) {
	before := len(c.errs)
	if strings.TrimSpace(k.HSMLabel) == "" {
		c.add(path+".hsm-label", "is required: the CKA_LABEL of the HSM key to generate or to import")
	}
	if k.Generate == nil {
		c.add(path+".generate", "is required: true to generate a new key in the HSM, false to import the existing key labelled hsm-label")
	}

	var (
		spec   awskms.KeySpec
		specOK bool
	)
	if k.KeySpec == "" {
		c.add(path+".key-spec", "is required: the KMS key spec, one of %s", specNames())
	} else if s, err := awskms.ParseKeySpec(k.KeySpec); err != nil {
		c.addErr(path+".key-spec", err)
	} else {
		spec, specOK = s, true
	}
	switch {
	case k.KeyUsage == "" && specOK:
		c.add(path+".key-usage", "is required: for %s write %s", spec.Name, usageNames(spec))
	case k.KeyUsage == "":
		c.add(path+".key-usage", "is required: the KMS key usage, one the key spec allows (ENCRYPT_DECRYPT, GENERATE_VERIFY_MAC or SIGN_VERIFY)")
	case specOK:
		if _, err := spec.Usage(k.KeyUsage); err != nil {
			c.addErr(path+".key-usage", err)
		}
	}

	if k.HSMLabel != "" {
		if err := kmsimport.CheckKeyLabel(k.HSMLabel); err != nil {
			c.addErr(path+".hsm-label", err)
		}
	}
	if k.Alias == "" {
		c.add(path+".alias", "is required: the KMS alias the key gets, e.g. alias/payments-2026")
	} else if err := awskms.CheckAlias(k.Alias); err != nil {
		c.addErr(path+".alias", err)
	}
	if err := awskms.CheckDescription(k.Description); err != nil {
		c.addErr(path+".description", err)
	}
	tagsOK := true
	for _, name := range sortedKeys(k.Tags) {
		if err := awskms.CheckTag(name, k.Tags[name]); err != nil {
			c.addErr(path+".tags."+name, err)
			tagsOK = false
		}
	}
	if tagsOK {
		if err := awskms.CheckTags(awskms.TagsOf(k.Tags)); err != nil {
			c.addErr(path+".tags", err)
		}
	}

	var (
		w   awskms.Wrapping
		wOK bool
	)
	if k.WrappingAlgorithm == "" {
		c.add(path+".wrapping-algorithm", "is required: %s", wrappingHint(spec, specOK))
	} else if parsed, err := awskms.ParseWrappingAlgorithm(k.WrappingAlgorithm); err != nil {
		c.addErr(path+".wrapping-algorithm", err)
	} else {
		w, wOK = parsed, true
	}
	wks, wksErr := awskms.ParseWrappingKeySpec(k.WrappingKeySpec)
	wksOK := k.WrappingKeySpec != "" && wksErr == nil
	if k.WrappingKeySpec == "" {
		c.add(path+".wrapping-key-spec", "is required: the size of KMS's RSA wrapping key, RSA_4096 unless there is a reason for less")
	} else if wksErr != nil {
		c.addErr(path+".wrapping-key-spec", wksErr)
	}
	if specOK && wOK && wksOK {
		if err := awskms.CheckWrapping(spec, w, wks); err != nil {
			c.addErr(path+".wrapping-algorithm", err)
		}
	}

	if exp, err := k.awsExpiry(); err != nil {
		c.addErr(path+".valid-to", err)
	} else if err := exp.Validate(now); err != nil {
		// Both or neither is a problem of the key; a bad time is the
		// valid-to field's.
		field := path + ".valid-to"
		if exp.NoExpiry != exp.ValidTo.IsZero() {
			field = path
		}
		c.addErr(field, err)
	}

	k.validateLife(c, path)

	// A last net: the request the key becomes must pass kmsimport's own
	// checks, so no rule it adds later is skipped here.
	if len(c.errs) == before && wrapWithTrusted != nil {
		req, err := k.request(*wrapWithTrusted)
		if err == nil {
			err = req.Validate(now)
		}
		if err != nil {
			c.addErr(ruleField(path, err), err)
		}
	}
}

// ruleField is the ceremony file's field for a kmsimport.ValidationError
// about key path's request, or path itself for any other error.
func ruleField(path string, err error) string {
	var ve *kmsimport.ValidationError
	if !errors.As(err, &ve) {
		return path
	}
	if f, ok := fileFields[ve.Field]; ok {
		return path + "." + f
	}
	return path
}

// fileFields maps kmsimport's fields to a key's fields in the ceremony file.
var fileFields = map[kmsimport.Field]string{
	kmsimport.FieldTag:         "tags",
	kmsimport.FieldAlias:       "alias",
	kmsimport.FieldDescription: "description",
	kmsimport.FieldKeyLabel:    "hsm-label",
}

func usageNames(spec awskms.KeySpec) string {
	var names []string
	for _, u := range spec.Usages {
		names = append(names, string(u))
	}
	return strings.Join(names, " or ")
}

// wrappingHint names the wrapping algorithms KMS accepts for the spec
// under an RSA_4096 wrapping key, or all of them when the spec is unknown.
func wrappingHint(spec awskms.KeySpec, specOK bool) string {
	ws := awskms.Wrappings
	if specOK {
		ws = awskms.ValidWrappings(spec, awskms.WrappingKeySpecRSA4096)
	}
	var names []string
	for _, w := range ws {
		names = append(names, string(w.Algorithm))
	}
	if specOK {
		return fmt.Sprintf("for %s under an RSA_4096 wrapping key KMS accepts %s", spec.Name, strings.Join(names, ", "))
	}
	return "one of " + strings.Join(names, ", ")
}

// validateReplicaRegions refuses a replica Region of key i that is the
// Region of its primary key.
func (f *File) validateReplicaRegions(c *checker, i int) {
	for j, r := range f.Keys[i].ReplicaRegions {
		if r == f.KMS.Region {
			c.add(fmt.Sprintf("keys[%d].replica-regions[%d]", i, j), "%q is kms.region, where the primary key lives: list only the other Regions", r)
		}
	}
}
