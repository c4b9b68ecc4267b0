package aws

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/smithy-go"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// kmsAdvice maps exception names to what they mean for the user; see the
// table in shared/docs/kms-import-protocol.md.
var kmsAdvice = map[string]struct {
	advice    string
	transient bool
}{
	"InvalidCiphertextException":          {advice: "KMS could not decrypt the wrapped material: it was wrapped under another public key, with an OAEP hash other than the one asked for, or with the wrong algorithm for this import token; run the import again to get fresh parameters"},
	"IncorrectKeyMaterialException":       {advice: "this is not the material imported into this KMS key before, or its length or format is wrong for the key spec; a key that once held material only ever accepts the same material: use the HSM key it was first imported from (see the key's kmsbridge:hsm-key-id tag)"},
	"ExpiredImportTokenException":         {advice: "the import parameters are older than 24 hours; run the import again to get fresh parameters"},
	"InvalidImportTokenException":         {advice: "the import token belongs to another KMS key or another GetParametersForImport call; run the import again so token and public key come from one call"},
	"KMSInvalidStateException":            {advice: "the KMS key is not in a state that accepts this (it must be PendingImport or Enabled; a key pending deletion must first be restored with cancel-key-deletion)"},
	"UnsupportedOperationException":       {advice: "the KMS key does not accept imported material: its origin must be EXTERNAL (create the key with kmsbridge, or aws kms create-key --origin EXTERNAL), and it must not be in a custom key store"},
	"NotFoundException":                   {advice: "no such KMS key (or alias) in this account and region: check --kms-key-id, --region and the credentials' account"},
	"InvalidArnException":                 {advice: "the key id is not a valid key id or ARN: give the key's UUID or its full arn:aws:kms:... ARN"},
	"AlreadyExistsException":              {advice: "the alias is already in use: choose another --alias, or move the existing one with aws kms update-alias"},
	"ValidationException":                 {advice: "KMS refused a parameter; the message says which"},
	"AccessDeniedException":               {advice: "the AWS credentials are not allowed to do this: check the IAM policy and the key policy (kms:CreateKey, kms:GetParametersForImport, kms:ImportKeyMaterial, kms:TagResource, kms:CreateAlias)"},
	"UnrecognizedClientException":         {advice: "KMS does not recognise the AWS credentials: check AWS_PROFILE or the access key"},
	"DisabledException":                   {advice: "the KMS key is disabled: enable it with aws kms enable-key"},
	"LimitExceededException":              {advice: "an account quota was reached (keys, aliases or request rate); see the KMS quotas page"},
	"DependencyTimeoutException":          {advice: "KMS timed out internally; this is transient, try again shortly", transient: true},
	"KMSInternalException":                {advice: "KMS had an internal error; this is transient, try again shortly", transient: true},
	"ThrottlingException":                 {advice: "KMS throttled the request; try again shortly", transient: true},
	"TagException":                        {advice: "KMS refused a tag: tag keys and values are at most 128 and 256 characters, and keys may not begin with aws:"},
	"InvalidKeyUsageException":            {advice: "the key's usage does not allow this operation"},
	"IncorrectKeyException":               {advice: "the ciphertext was made under another KMS key"},
	"InvalidCiphertextException(Decrypt)": {advice: "the ciphertext is damaged or was made under other key material"},
}

// explain turns an error from the KMS client into a *KMSError with advice.
func explain(op string, err error) error {
	if err == nil {
		return nil
	}
	if ke, ok := err.(*kmsimport.KMSError); ok {
		return ke // already explained (e.g. untilKnown's verdict)
	}
	// The transport's guard refused the endpoint: not a KMS failure but
	// the operator's input, and nothing was sent.
	var epErr *kmsimport.EndpointError
	if errors.As(err, &epErr) {
		return epErr
	}
	e := &kmsimport.KMSError{Op: op, Err: err}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		e.Message = fmt.Sprintf("the KMS endpoint's TLS certificate does not verify: %v", certErr.Err)
		e.Advice = "nothing was sent; if the endpoint is meant and uses a private CA, give that CA on purpose with --ca-bundle FILE (ceremony file: kms.ca-bundle); AWS_CA_BUNDLE and ca_bundle are ignored"
		return e
	}
	var apiErr smithy.APIError
	var netErr net.Error
	var opErr *net.OpError
	var deserr *smithy.DeserializationError
	switch {
	case errors.As(err, &deserr), errors.As(err, &apiErr) && notKMS(apiErr):
		e.Message = "the endpoint answered, but it does not speak the KMS API (its answer is not a KMS response)"
		e.Advice = "check --endpoint-url (or the ceremony file's kms.endpoint): it must be a KMS endpoint such as https://kms.REGION.amazonaws.com"
	case errors.As(err, &apiErr):
		e.Code = apiErr.ErrorCode()
		e.Message = apiErr.ErrorMessage()
		key := e.Code
		if op == "Decrypt" && e.Code == "InvalidCiphertextException" {
			key += "(Decrypt)"
		}
		if a, ok := kmsAdvice[key]; ok {
			e.Advice, e.Transient = a.advice, a.transient
		}
	case errors.As(err, &opErr), errors.As(err, &netErr):
		e.Transient = true
		if neverSent(err) {
			e.Message = fmt.Sprintf("cannot reach the KMS endpoint: %v", err)
			e.Advice = "check --endpoint-url (or the ceremony file's kms.endpoint), --region and the network; the request was not sent"
		} else {
			e.Message = fmt.Sprintf("the connection to KMS failed: %v", err)
			e.Advice = "check --endpoint-url (or the ceremony file's kms.endpoint), --region, the network and --kms-timeout; unknown whether the request reached KMS"
		}
	case strings.Contains(err.Error(), "credentials"):
		e.Message = "no usable AWS credentials"
		e.Advice = "configure credentials the usual AWS way (AWS_PROFILE or --profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role)"
	default:
		e.Message = err.Error()
	}
	return e
}

// notKMS reports whether an API error is not one KMS sends: KMS always
// names its exception, so a response with none came from something else.
func notKMS(apiErr smithy.APIError) bool {
	c := apiErr.ErrorCode()
	return c == "" || c == "UnknownError"
}

// invalid is an error in what the user asked for (kmsimport.ErrInvalidInput).
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{kmsimport.ErrInvalidInput}, args...)...)
}
