package hsm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/record"
)

// BenchmarkWrapOAEP is one import's work inside SoftHSM2: bring the KMS
// wrapping key in as a session object, wrap, destroy it.
func BenchmarkWrapOAEP(b *testing.B) {
	tk := benchToken(b)
	k, err := tk.Generate("bench", hsm.AES256(), false)
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := rsa.GenerateKey(rand.Reader, 4096)
	b.ResetTimer()
	for b.Loop() {
		if _, err := tk.WrapOAEP(k, &priv.PublicKey, hsm.OAEPSHA1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrapRSAAES is the composed RSA-AES wrap of an EC key: ephemeral
// AES key, RFC 5649, OAEP, destroy.
func BenchmarkWrapRSAAES(b *testing.B) {
	tk := benchToken(b)
	k, err := tk.Generate("bench-ec", hsm.ECKey(hsm.P256), false)
	if err != nil {
		b.Fatal(err)
	}
	priv, _ := rsa.GenerateKey(rand.Reader, 4096)
	b.ResetTimer()
	for b.Loop() {
		if _, err := tk.WrapRSAAES(k, &priv.PublicKey, hsm.OAEPSHA1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProbe is the wrapping-algorithm probe every import runs first,
// answered from the Token's cache after the first (BenchmarkProbeUncached
// is the probe itself).
func BenchmarkProbe(b *testing.B) {
	tk := benchToken(b)
	for b.Loop() {
		_ = tk.ProbeOAEP(hsm.OAEPSHA256)
		if err := tk.ProbeOAEP(hsm.OAEPSHA1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuditSign is one signature of a signed record's entry: C_SignInit
// and C_Sign with the audit key inside SoftHSM2. Until record format 3 a
// record's entries were signed one at a time (each chained to the whole
// line before, signature included), so this bounded how fast a signed
// record could grow, whatever the parallelism; now entries are signed
// beside each other (BenchmarkSignedRecordParallel16).
func BenchmarkAuditSign(b *testing.B) {
	_, s := benchAuditSigner(b)
	digest := make([]byte, 32)
	for b.Loop() {
		if _, err := s.Sign(nil, digest, crypto.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignedRecordParallel16 is one entry of a signed record that 16
// goroutines append to at once, as a 16-way bulk import's workers do: the
// audit key in SoftHSM2 signs, the record writer chains, writes and
// fsyncs (ns/op is wall time per entry, all 16 together).
func BenchmarkSignedRecordParallel16(b *testing.B) { benchSignedRecord(b, 1) }

// BenchmarkSignedRecordParallel16Deferred is BenchmarkSignedRecordParallel16
// as a bulk run now appends: of every five entries, four are written
// without waiting for their fsync (record.Writer.AppendWritten: a step's
// outcome) and the fifth waits (Append: an intent, durable before its
// change, which makes the four durable too), about a key's mix of 20
// entries and 4 intents.
func BenchmarkSignedRecordParallel16Deferred(b *testing.B) { benchSignedRecord(b, 5) }

// benchAuditSigner is a new audit key in a bench token and its signer.
func benchAuditSigner(b *testing.B) (*hsm.Key, *hsm.AuditSigner) {
	b.Helper()
	tk := benchToken(b)
	k, err := tk.GenerateAuditKey("audit")
	if err != nil {
		b.Fatal(err)
	}
	s, err := tk.AuditSigner(k)
	if err != nil {
		b.Fatal(err)
	}
	return k, s
}

// benchSignedRecord appends to a signed record from 16 goroutines; of every
// waitEvery entries the last waits for its fsync (Append) and the others
// are written without waiting (AppendWritten).
func benchSignedRecord(b *testing.B, waitEvery int) {
	k, s := benchAuditSigner(b)
	w, err := record.Open(filepath.Join(b.TempDir(), "r.jsonl"), s, k.ID)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			e := record.Entry{Command: "import", Step: "generate", Outcome: record.OutcomeOK,
				Outputs: map[string]string{"KmsKeyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}}
			var err error
			if i%waitEvery == waitEvery-1 {
				_, err = w.Append(e)
			} else {
				_, err = w.AppendWritten(e)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
