package record

import (
	"bytes"
	"testing"
)

// FuzzVerify feeds arbitrary bytes to the record verifier, one line or
// many: it reports problems or fails, never panics.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"Seq":1,"Prev":"` + GenesisPrev + `"}` + "\n"))
	f.Add([]byte("not json\n"))
	f.Add([]byte("{}\n{}\n"))
	f.Add([]byte(`{"Seq":1,"Prev":"00","Signature":{"Value":"AA=="}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := VerifyWith(bytes.NewReader(data), VerifyOptions{AllowUnsigned: true})
		if err == nil && rep == nil {
			t.Fatal("no report and no error")
		}
	})
}
