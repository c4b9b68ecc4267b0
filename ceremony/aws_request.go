package ceremony

import (
	"fmt"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// The AWS KMS part of a ceremony key: the import request it makes.

// Request is the import this key asks for, in the form awskms.Importer
// runs. For a key of a File that passed Validate it never fails, and the
// Request passes Request.Validate at the time Validate was given; tags are
// in the order of their keys.
func (k Key) Request(f *File) (awskms.Request, error) {
	if f.DualControl.WrapWithTrusted == nil {
		return awskms.Request{}, fmt.Errorf("%w: ceremony key %q: dual-control.wrap-with-trusted is not set", kmsimport.ErrInvalidInput, k.HSMLabel)
	}
	return k.request(*f.DualControl.WrapWithTrusted)
}

func (k Key) request(wrapWithTrusted bool) (awskms.Request, error) {
	if k.Generate == nil {
		return awskms.Request{}, fmt.Errorf("%w: ceremony key %q: generate is not set", kmsimport.ErrInvalidInput, k.HSMLabel)
	}
	spec, err := awskms.ParseKeySpec(k.KeySpec)
	if err != nil {
		return awskms.Request{}, fmt.Errorf("ceremony key %q: %w", k.HSMLabel, err)
	}
	wks, err := awskms.ParseWrappingKeySpec(k.WrappingKeySpec)
	if err != nil {
		return awskms.Request{}, fmt.Errorf("ceremony key %q: %w", k.HSMLabel, err)
	}
	exp, err := k.awsExpiry()
	if err != nil {
		return awskms.Request{}, fmt.Errorf("ceremony key %q: %w", k.HSMLabel, err)
	}
	req := awskms.Request{
		KeyLabel:          k.HSMLabel,
		Generate:          *k.Generate,
		WrapWithTrusted:   wrapWithTrusted,
		KeySpec:           string(spec.Name),
		KeyUsage:          k.KeyUsage,
		KMSKeyID:          k.KMSKeyID,
		Alias:             k.Alias,
		Description:       k.Description,
		WrappingAlgorithm: k.WrappingAlgorithm,
		WrappingKeySpec:   wks,
		Expiry:            exp,
		MultiRegion:       k.MultiRegion,
	}
	req.Tags = awskms.TagsOf(k.Tags)
	return req, nil
}

// reportSpec is material m as AWS KMS names it, which a plan in the
// ceremony's report has always shown, for every key, as Spec.
func reportSpec(m Material) awskms.KeySpec {
	spec, _ := awskms.ParseKeySpec(m.Name)
	return spec
}

// awsExpiry is the key's expiry in AWS KMS: its valid-to, or no-expiry;
// only a valid-to that is not a time fails.
func (k Key) awsExpiry() (awskms.Expiry, error) {
	t, err := k.validTo()
	return awskms.Expiry{NoExpiry: k.NoExpiry, ValidTo: t}, err
}
