package aws

import (
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// Target is AWS KMS as kmsimport's Adapter, for one request: the cloud the
// import flow of this package (importflow.go) imports into, as gcp.Target
// and azure.Target are Google's and Azure's (docs/architecture.md).
type Target struct {
	Req Request
	// KMS is the home Region's client; a *Client names the journal's
	// target (Client.Target).
	KMS API
	// Region is the home Region, for a KMS without a target of its own.
	Region string
	// AllowSecondKMSKey is import's --allow-second-kms-key, which the
	// ceremony record names among the inputs.
	AllowSecondKMSKey bool
}

// Cloud names AWS KMS in messages.
func (Target) Cloud() string { return "AWS KMS" }

// WrapMethods are the wrapping algorithms KMS accepts for material of p
// under the request's wrapping key spec (RSA_4096 when not given),
// strongest first, under KMS's names.
func (a Target) WrapMethods(p hsm.KeyParams) []kmsimport.CloudWrap {
	wks := a.Req.WrappingKeySpec
	if wks == "" {
		wks = types.WrappingKeySpecRsa4096
	}
	var out []kmsimport.CloudWrap
	for _, ks := range KeySpecs {
		if ks.HSM.String() != p.String() {
			continue
		}
		for _, w := range ValidWrappings(ks, wks) {
			out = append(out, cloudWrap(w, wks))
		}
		break
	}
	return out
}

// cloudWrap is w as the neutral core names a wrap method.
func cloudWrap(w Wrapping, wks types.WrappingKeySpec) kmsimport.CloudWrap {
	return kmsimport.CloudWrap{Name: string(w.Algorithm), Method: hsm.WrapMethod{RSAAES: w.RSAAES, OAEP: w.OAEP}, RSABits: WrappingKeyBits(wks)}
}

// JournalTarget is the KMS account the run's journal belongs to: the
// client's Target, else the Region at AWS's endpoint.
func (a Target) JournalTarget() string {
	if t, ok := a.KMS.(interface{ Target() string }); ok {
		return t.Target()
	}
	return a.Region + "@aws"
}

// RecordInputs is the request as the ceremony record names it.
func (a Target) RecordInputs() map[string]string {
	in := a.Req.RecordInputs()
	if a.AllowSecondKMSKey {
		in["AllowSecondKmsKey"] = "true"
	}
	return in
}

var _ kmsimport.Adapter = Target{}
