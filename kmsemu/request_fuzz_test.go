package kmsemu

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzServeHTTP sends arbitrary awsJson1.1 requests to the emulator: every
// answer must be a JSON body with a status KMS uses, never a panic. The
// first byte chooses the operation.
func FuzzServeHTTP(f *testing.F) {
	f.Add(byte(0), []byte(`{}`))
	f.Add(byte(1), []byte(`{"KeyId":"alias/x"}`))
	f.Add(byte(2), []byte(`{"KeySpec":"SYMMETRIC_DEFAULT","Origin":"EXTERNAL","Tags":[{"TagKey":"a","TagValue":"b"}]}`))
	f.Add(byte(3), []byte(`{"KeyId":"00000000-0000-0000-0000-000000000000","ImportToken":"AAAA","EncryptedKeyMaterial":"AAAA"}`))
	f.Add(byte(4), []byte(`[1,2`))
	f.Add(byte(5), []byte(`{"Plaintext":123}`))
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.Cleanup(s.Close)
	ops := append([]string{"", "NoSuchOperation"}, kmsOperations...)
	f.Fuzz(func(t *testing.T, which byte, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Target", targetPrefix+ops[int(which)%len(ops)])
		req.Header.Set("Content-Type", jsonContent)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK && (w.Code < 400 || w.Code > 599) {
			t.Fatalf("status %d", w.Code)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", w.Body.String())
		}
	})
}
