package aws

import (
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// AWS's part of reading the split's files (kmsimport.SplitCloud): the
// checks that need KMS's rules. kmsimport runs the common ones (format,
// digests, public key size, expiry) itself.
func init() {
	kmsimport.RegisterSplitCloud(kmsimport.CloudAWS, kmsimport.SplitCloud{
		CheckBundle: checkBundle, CheckEndpoint: CheckBundleEndpoint, CheckWrapped: checkWrapped,
	})
}

// checkBundle checks an AWS bundle offline: an ARN that is its key's, a
// key spec and wrapping algorithm kmsbridge imports, and a wrapping KMS
// accepts for the key spec under the wrapping key spec.
func checkBundle(path string, b *kmsimport.Bundle) error {
	if b.Arn != "" && !strings.HasSuffix(b.Arn, "/"+b.KeyId) {
		return invalid("%s: Arn %s is not the ARN of KeyId %s: the file is inconsistent", path, kmsimport.Excerpt(b.Arn), kmsimport.Excerpt(b.KeyId))
	}
	spec, err := ParseKeySpec(b.KeySpec)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	w, err := ParseWrappingAlgorithm(b.WrappingAlgorithm)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	wks, err := ParseWrappingKeySpec(b.WrappingKeySpec)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := CheckWrapping(spec, w, wks); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// checkWrapped checks an AWS wrapped file: a key spec kmsbridge imports.
func checkWrapped(path string, w *kmsimport.Wrapped) error {
	if _, err := ParseKeySpec(w.KeySpec); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
