package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

func netListen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// sdkClient is the SDK's client, default retryer, dummy credentials.
func sdkClient(url string) *kms.Client {
	return kms.New(kms.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(url),
	})
}

// openBenchToken loads the module for tok and logs in; close both after.
// raw is the token's PKCS#11, for filling it with objects.
func openBenchToken(tok *softhsm.Token) (m *hsm.Module, tk *hsm.Token, raw hsm.PKCS11) {
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	check(err)
	m.Trace(func(p hsm.PKCS11) hsm.PKCS11 { raw = p; return p })
	tk, err = m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	check(err)
	check(tk.Login(tok.PIN))
	return m, tk, raw
}

// runFloor runs the floor (test/bench/floor: its own PKCS#11 and KMS
// code, one session per worker, no checks, no record) under
// /usr/bin/time -v, on a token of its own, against the same emulator.
func (b *bench) runFloor(set string, n, p int) runResult {
	tok := b.newToken()
	b.seq++
	prefix := fmt.Sprintf("fl%d", b.seq)
	cmd := exec.Command("/usr/bin/time", "-v", *floorBin, "-module", softhsm.DefaultModule, "-token", tok.Label,
		"-endpoint-url", b.emu.url, "-set", set, "-keys", strconv.Itoa(n), "-parallel", strconv.Itoa(p), "-prefix", prefix, "-wrapping-key-spec", *wrapSpec)
	cmd.Env = append(os.Environ(), tok.Environ(), "FLOOR_PIN="+tok.PIN)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	_ = cmd.Run()
	res := runResult{seconds: time.Since(start).Seconds()}
	var out struct {
		Keys, Failed int
		Error        string `json:"first_error"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		check(fmt.Errorf("the floor printed no result: %v\n%s", err, tail(stderr.String())))
	}
	res.done, res.failed = out.Keys, out.Failed
	res.rssMiB, res.cpu = timeFigures(stderr.String())
	if out.Failed > 0 {
		b.log.Warn("floor key failed", "error", out.Error)
	}
	b.log.Info("floor run", "set", set, "keys", n, "parallel", p, "seconds", res.seconds, "failed", res.failed, "rss_mib", res.rssMiB, "cpu_s", res.cpu)
	return res
}

var (
	userRE = regexp.MustCompile(`User time \(seconds\): ([0-9.]+)`)
	sysRE  = regexp.MustCompile(`System time \(seconds\): ([0-9.]+)`)
)

// timeFigures reads peak RSS (MiB) and user+system CPU seconds from
// /usr/bin/time -v's report: the kernel's accounting of the process.
func timeFigures(report string) (rssMiB, cpu float64) {
	if m := rssRE.FindStringSubmatch(report); m != nil {
		kb, _ := strconv.ParseFloat(m[1], 64)
		rssMiB = kb / 1024
	}
	for _, re := range []*regexp.Regexp{userRE, sysRE} {
		if m := re.FindStringSubmatch(report); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			cpu += v
		}
	}
	return rssMiB, cpu
}
