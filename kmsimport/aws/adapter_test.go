package aws

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// TestAWSAdapterWrapMethods: the adapter offers, for each kind of key,
// exactly the wrapping algorithms KMS accepts for its spec, strongest
// first, under the wrapping key spec asked for.
func TestAWSAdapterWrapMethods(t *testing.T) {
	for _, ks := range KeySpecs {
		for _, wks := range []types.WrappingKeySpec{"", types.WrappingKeySpecRsa2048} {
			got := Target{Req: Request{WrappingKeySpec: wks}}.WrapMethods(ks.HSM)
			want := wks
			if want == "" {
				want = types.WrappingKeySpecRsa4096
			}
			ws := ValidWrappings(ks, want)
			if len(got) != len(ws) {
				t.Fatalf("%s under %q: %d methods, want %d", ks.Name, wks, len(got), len(ws))
			}
			for i, w := range ws {
				if got[i].Name != string(w.Algorithm) || got[i].Method != (hsm.WrapMethod{RSAAES: w.RSAAES, OAEP: w.OAEP}) || got[i].RSABits != WrappingKeyBits(want) {
					t.Errorf("%s under %q: method %d is %+v, want %s", ks.Name, wks, i, got[i], w.Algorithm)
				}
			}
		}
	}
	if got := (Target{Region: "eu-west-1"}).JournalTarget(); got != "eu-west-1@aws" {
		t.Errorf("journal target without a client: %q", got)
	}
}

// TestAWSAdapterRecordInputs: the record names what the request asked
// for, and --allow-second-kms-key only when given.
func TestAWSAdapterRecordInputs(t *testing.T) {
	req := Request{KeyLabel: "k", Generate: true}
	if got := (Target{Req: req}).RecordInputs(); got["AllowSecondKmsKey"] != "" || len(got) != len(req.RecordInputs()) {
		t.Errorf("without the flag: %v, want the request's own inputs %v", got, req.RecordInputs())
	}
	got := Target{Req: req, AllowSecondKMSKey: true}.RecordInputs()
	if got["AllowSecondKmsKey"] != "true" || len(got) != len(req.RecordInputs())+1 {
		t.Errorf("with the flag: %v, want the request's inputs and AllowSecondKmsKey=true", got)
	}
}
