package kmsemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestWireErrors checks the error shapes on the wire: status, the
// X-Amzn-ErrorType header and a {"__type","message"} body that agree.
func TestWireErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tests := []struct {
		name   string
		target string
		body   string
		status int
		code   string
		msg    string
	}{
		{"fail unknown operation", "TrentService.MakeCoffee", `{}`, 400, "UnknownOperationException", "MakeCoffee"},
		{"fail other service", "DynamoDB_20120810.ListTables", `{}`, 400, "UnknownOperationException", ""},
		{"fail missing X-Amz-Target", "", `{}`, 400, "UnknownOperationException", ""},
		{"fail KMS operation not emulated: the emulator's own code", "TrentService.GenerateDataKey", `{"KeyId":"x"}`, 501, "KmsBridgeNotImplementedException", "GenerateDataKey"},
		{"fail malformed JSON", "TrentService.DescribeKey", `{"KeyId":`, 400, "SerializationException", ""},
		{"fail JSON array body", "TrentService.DescribeKey", `[]`, 400, "SerializationException", ""},
		{"fail wrong member type", "TrentService.DescribeKey", `{"KeyId": 42}`, 400, "SerializationException", "KeyId"},
		{"fail blob that is not base64", "TrentService.Decrypt", `{"CiphertextBlob": "***"}`, 400, "SerializationException", ""},
		{"fail timestamp that is not a number", "TrentService.ImportKeyMaterial", `{"ValidTo": "tomorrow"}`, 400, "SerializationException", ""},
		{"fail missing required member", "TrentService.DescribeKey", `{}`, 400, "ValidationException", "Value null at 'keyId' failed to satisfy constraint: Member must not be null"},
		{"fail several missing members", "TrentService.GetParametersForImport", `{}`, 400, "ValidationException", "3 validation errors detected"},
		{"fail empty key id", "TrentService.DescribeKey", `{"KeyId": ""}`, 400, "ValidationException", "length greater than or equal to 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, errType, body := e.raw(t, tt.target, []byte(tt.body))
			var eb struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if status != tt.status || errType != tt.code || eb.Type != tt.code {
				t.Errorf("HTTP %d, X-Amzn-ErrorType %q, __type %q; want %d %s", status, errType, eb.Type, tt.status, tt.code)
			}
			if !strings.Contains(eb.Message, tt.msg) {
				t.Errorf("message %q does not contain %q", eb.Message, tt.msg)
			}
		})
	}
	t.Run("fail GET", func(t *testing.T) {
		resp, err := http.Get(e.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET / = %d", resp.StatusCode)
		}
	})
}

// TestWireFormat checks what a client parses on success: the content type,
// epoch-second numbers for timestamps and base64 strings for blobs.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	t.Run("ok empty body is an empty request", func(t *testing.T) {
		status, _, body := e.raw(t, "TrentService.ListKeys", nil)
		if status != http.StatusOK || !strings.Contains(string(body), `"Keys":[]`) {
			t.Errorf("HTTP %d %s", status, body)
		}
	})
	t.Run("ok timestamps are JSON numbers and blobs base64", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.url+"/", strings.NewReader(`{"Origin":"EXTERNAL"}`))
		req.Header.Set("X-Amz-Target", "TrentService.CreateKey")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" || resp.Header.Get("X-Amzn-RequestId") == "" {
			t.Errorf("Content-Type %q, X-Amzn-RequestId %q", ct, resp.Header.Get("X-Amzn-RequestId"))
		}
		var created struct {
			KeyMetadata map[string]any
		}
		if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
			t.Fatal(err)
		}
		if _, ok := created.KeyMetadata["CreationDate"].(float64); !ok {
			t.Errorf("CreationDate = %#v, want a JSON number", created.KeyMetadata["CreationDate"])
		}

		var p map[string]any
		e.rawOK(t, "GetParametersForImport", map[string]any{
			"KeyId": created.KeyMetadata["KeyId"], "WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048",
		}, &p)
		if _, ok := p["ParametersValidTo"].(float64); !ok {
			t.Errorf("ParametersValidTo = %#v, want a JSON number", p["ParametersValidTo"])
		}
		if der, err := base64.StdEncoding.DecodeString(p["PublicKey"].(string)); err != nil || der[0] != 0x30 {
			t.Errorf("PublicKey is not base64 DER: %v", err)
		}
	})
	t.Run("ok SDK errors are the SDK's typed exceptions", func(t *testing.T) {
		_, err := e.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(unknownKey(t))})
		var nf *types.NotFoundException
		if !errors.As(err, &nf) || !strings.Contains(nf.ErrorMessage(), "does not exist") {
			t.Errorf("DescribeKey of an unknown key = %T %v, want *types.NotFoundException", err, err)
		}
		_, err = e.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(unknownKey(t))})
		// Not a real KMS code, so the SDK has no type for it.
		if code(err) != "KmsBridgeNotImplementedException" {
			t.Errorf("GenerateDataKey = %T %v, want KmsBridgeNotImplementedException", err, err)
		}
	})
}
