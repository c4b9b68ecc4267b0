package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/record"
)

// documentedFlow is AWS's documented import of one symmetric key with the
// aws CLI and OpenSSL: create-key, get-parameters-for-import, openssl
// pkeyutl with OAEP SHA-256, import-key-material.
const documentedFlow = `#!/bin/bash
set -euo pipefail
EP=$1; DIR=$2; SPEC=$3
cd "$DIR"
kid=$(aws kms create-key --endpoint-url "$EP" --origin EXTERNAL --key-spec SYMMETRIC_DEFAULT --key-usage ENCRYPT_DECRYPT --query KeyMetadata.KeyId --output text)
read -r pk tok < <(aws kms get-parameters-for-import --endpoint-url "$EP" --key-id "$kid" --wrapping-algorithm RSAES_OAEP_SHA_256 --wrapping-key-spec "$SPEC" --query '[PublicKey,ImportToken]' --output text)
echo "$pk" | base64 -d > pub.der
echo "$tok" | base64 -d > token.bin
openssl rand -out key.bin 32
openssl pkeyutl -encrypt -in key.bin -out wrapped.bin -inkey pub.der -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -pkeyopt rsa_mgf1_md:sha256
aws kms import-key-material --endpoint-url "$EP" --key-id "$kid" --encrypted-key-material fileb://wrapped.bin --import-token fileb://token.bin --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE > /dev/null
rm -f key.bin
`

// runDocumentedFlow runs the documented flow for n keys one after the
// other and returns the seconds per key.
func (b *bench) runDocumentedFlow(n int) float64 {
	script := filepath.Join(b.dir, "documented-flow.sh")
	check(os.WriteFile(script, []byte(documentedFlow), 0o700))
	wd := filepath.Join(b.dir, "docflow")
	check(os.MkdirAll(wd, 0o700))
	start := time.Now()
	for i := 0; i < n; i++ {
		cmd := exec.Command(script, b.emu.url, wd, *wrapSpec)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_DEFAULT_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
		if out, err := cmd.CombinedOutput(); err != nil {
			check(fmt.Errorf("documented flow, key %d: %v\n%s", i, err, out))
		}
	}
	per := time.Since(start).Seconds() / float64(n)
	b.log.Info("documented flow", "keys", n, "seconds_per_key", per)
	return per
}

// verifyRecord times kmsbridge record verify of path.
func (b *bench) verifyRecord(path string) (float64, int) {
	data, err := os.ReadFile(path)
	check(err)
	start := time.Now()
	args := []string{"record", "verify"}
	if b.lastPub != "" {
		args = append(args, "--public-key", b.lastPub)
	}
	out, err := exec.Command(*kmsbridgeBin, append(args, path)...).CombinedOutput()
	s := time.Since(start).Seconds()
	if err != nil {
		check(fmt.Errorf("record verify %s: %v\n%s", path, err, tail(string(out))))
	}
	return s, bytes.Count(data, []byte("\n"))
}

// recordVerify writes an n-entry record signed by a software audit key
// (P-256, as the token's) and an unsigned one, and times kmsbridge record
// verify of each as a whole process under /usr/bin/time: the signed one
// against its public key, the unsigned one --chain-only.
func (b *bench) recordVerify(n int) (signed, chain runResult) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	check(err)
	pub := filepath.Join(b.dir, "big-record.audit.pem")
	check(os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	write := func(path string, signer *ecdsa.PrivateKey) {
		var w *record.Writer
		var err error
		if signer != nil {
			w, err = record.Open(path, signer, []byte{1})
		} else {
			w, err = record.Open(path, nil, nil)
		}
		check(err)
		for i := 0; i < n; i++ {
			_, err := w.Append(record.Entry{Command: "import --from", Step: awskms.StepVerify, Outcome: "ok",
				Inputs: map[string]string{"KeyList": "tenants.csv"}, Outputs: map[string]string{"CeremonyKeyLabel": "tenant-" + strconv.Itoa(i), "KmsKeyId": fmt.Sprintf("%08d-0000-0000-0000-000000000000", i)}})
			check(err)
		}
		check(w.Close())
	}
	verify := func(args ...string) runResult {
		cmd := exec.Command("/usr/bin/time", append([]string{"-v", *kmsbridgeBin, "record", "verify"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		start := time.Now()
		err := cmd.Run()
		res := runResult{seconds: time.Since(start).Seconds()}
		if err != nil {
			check(fmt.Errorf("record verify %v: %v\n%s", args, err, tail(stderr.String())))
		}
		res.rssMiB, res.cpu = timeFigures(stderr.String())
		return res
	}
	sp, up := filepath.Join(b.dir, "big-record.jsonl"), filepath.Join(b.dir, "big-record-unsigned.jsonl")
	write(sp, key)
	write(up, nil)
	signed = verify("--public-key", pub, sp)
	chain = verify("--chain-only", up)
	b.log.Info("record verify", "entries", n, "signed_s", signed.seconds, "signed_cpu_s", signed.cpu, "chain_s", chain.seconds, "chain_cpu_s", chain.cpu)
	return signed, chain
}
