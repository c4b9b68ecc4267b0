package kmsemu

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

type kcvOutput struct {
	KeyId, KeyCheckValue, KeyMaterialId string
}

func (e *env) kcv(t *testing.T, keyID string) kcvOutput {
	t.Helper()
	var out kcvOutput
	e.rawOK(t, "KmsBridgeGetKeyCheckValue", map[string]string{"KeyId": keyID}, &out)
	return out
}

func TestKeyCheckValueFunction(t *testing.T) {
	t.Parallel()
	// AES-256 under the all-zero key of the all-zero block starts dc95c0
	// (FIPS-197 style known answer, also what HSMs print for a zero key).
	if got := keyCheckValue(make([]byte, 32)); got != "DC95C0" {
		t.Fatalf("keyCheckValue(zero key) = %s, want DC95C0", got)
	}
}

func TestKmsBridgeGetKeyCheckValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	keyID, material := e.importedKey(t)
	arn := e.srv.keyARN(keyID)
	matID := aws.ToString(e.describe(t, keyID).CurrentKeyMaterialId)

	t.Run("ok imported key, by key ID, ARN and alias", func(t *testing.T) {
		name := e.aliasedKey(t) // another key; re-point it below
		if _, err := e.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(keyID)}); err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{keyID, arn, name} {
			got := e.kcv(t, ref)
			want := kcvOutput{KeyId: arn, KeyCheckValue: keyCheckValue(material), KeyMaterialId: matID}
			if got != want {
				t.Errorf("%s: got %+v, want %+v", ref, got, want)
			}
		}
	})
	t.Run("ok the answer carries exactly KeyId, KeyCheckValue, KeyMaterialId and never the material", func(t *testing.T) {
		status, _, body := e.raw(t, "TrentService.KmsBridgeGetKeyCheckValue", mustJSON(t, map[string]string{"KeyId": keyID}))
		if status != http.StatusOK {
			t.Fatalf("HTTP %d: %s", status, body)
		}
		var m map[string]any
		if err := jsonUnmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		var names []string
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		if strings.Join(names, ",") != "KeyCheckValue,KeyId,KeyMaterialId" {
			t.Errorf("members = %v", names)
		}
		if !regexp.MustCompile(`^[0-9A-F]{6}$`).MatchString(m["KeyCheckValue"].(string)) {
			t.Errorf("KeyCheckValue = %v, want 6 uppercase hex digits", m["KeyCheckValue"])
		}
		for _, enc := range []string{base64.StdEncoding.EncodeToString(material), strings.ToUpper(hexString(material)), hexString(material)} {
			if strings.Contains(string(body), enc) {
				t.Fatal("the answer contains the key material")
			}
		}
	})
	t.Run("ok AWS_KMS key", func(t *testing.T) {
		if got := e.kcv(t, e.awsKMSKey(t)).KeyCheckValue; len(got) != 6 {
			t.Errorf("KeyCheckValue = %q", got)
		}
	})
	for _, tt := range []struct {
		name, keyID, code string
	}{
		{"fail key pending import has no material", e.externalKey(t), "KMSInvalidStateException"},
		{"fail unknown key", unknownKey(t), "NotFoundException"},
		{"fail HMAC key: AES only", e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecHmac256, types.KeyUsageTypeGenerateVerifyMac), "UnsupportedOperationException"},
		{"fail ECC key: AES only", e.createSpecKey(t, types.OriginTypeAwsKms, types.KeySpecEccSecgP256k1, types.KeyUsageTypeSignVerify), "UnsupportedOperationException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, errType, body := e.raw(t, "TrentService.KmsBridgeGetKeyCheckValue", mustJSON(t, map[string]string{"KeyId": tt.keyID}))
			if status != http.StatusBadRequest || errType != tt.code {
				t.Errorf("HTTP %d %s (%s), want 400 %s", status, errType, body, tt.code)
			}
			if tt.code == "UnsupportedOperationException" && !strings.Contains(string(body), "SYMMETRIC_DEFAULT") {
				t.Errorf("message %s does not say which keys have a check value", body)
			}
		})
	}
}

func TestKmsBridgeAdvanceClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	t.Run("ok moves the clock and reports it", func(t *testing.T) {
		e.advance(t, 90*time.Minute+500*time.Millisecond)
		e.advance(t, 0)
		md := e.createKey(t, types.OriginTypeAwsKms)
		if want := testBase.Add(90*time.Minute + 500*time.Millisecond); !aws.ToTime(md.CreationDate).Equal(want) {
			t.Errorf("CreationDate = %v, want the advanced clock %v", aws.ToTime(md.CreationDate), want)
		}
	})
	for _, tt := range []struct {
		name string
		body string
		code string
	}{
		{"fail negative seconds", `{"Seconds": -1}`, "ValidationException"},
		{"fail missing seconds", `{}`, "ValidationException"},
		{"fail seconds as a string", `{"Seconds": "60"}`, "SerializationException"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, errType, body := e.raw(t, "TrentService.KmsBridgeAdvanceClock", []byte(tt.body))
			if status != http.StatusBadRequest || errType != tt.code {
				t.Errorf("HTTP %d %s (%s), want 400 %s", status, errType, body, tt.code)
			}
		})
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
