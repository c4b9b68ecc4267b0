// Command bulkbench measures bulk imports for make bench and BENCHMARKS.md:
// kmsbridge import --from at several parallelisms against the emulator with
// per-request latency, the same SDK and PKCS#11 calls in one plain Go loop
// (the floor), AWS's documented per-key flow scripted with the aws CLI and
// OpenSSL, the sustained rate under AWS's default request quotas, peak RSS,
// record verify of a large record, and import time with thousands of
// objects, keys and aliases already there. It prints one Markdown report.
// It is a benchmark harness, not shipped, and never a test.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/kmsimport"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

var (
	kmsbridgeBin = flag.String("kmsbridge", "bin/kmsbridge", "kmsbridge binary")
	emulatorBin  = flag.String("emulator", "bin/kms-emulator", "kms-emulator binary")
	keys         = flag.Int("keys", 1000, "SYMMETRIC_DEFAULT keys per run")
	mixed        = flag.Int("mixed", 200, "HMAC and EC keys per mixed run")
	parallels    = flag.String("parallel", "1,4,16", "parallelisms")
	latency      = flag.Duration("latency", 30*time.Millisecond, "per-request KMS latency")
	quotaKeys    = flag.Int("quota-keys", 20, "keys imported under AWS's default quotas")
	docSample    = flag.Int("doc-sample", 10, "keys the documented flow imports (extrapolated)")
	recEntries   = flag.Int("record-entries", 10000, "entries of the record verify figure")
	fillers      = flag.Int("fillers", 10000, "objects in the token and keys/aliases in KMS for the growth figure")
	wrapSpec     = flag.String("wrapping-key-spec", "RSA_2048", "wrapping key spec of every import")
	work         = flag.String("dir", "", "work directory (default: a new temporary one)")
	withRecord   = flag.Bool("record", true, "kmsbridge writes a ceremony record in every run (as an operator would); the last symmetric run's record is verified too")
	skipFloor    = flag.Bool("no-floor", false, "skip the floor runs")
)

func main() {
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	dir := *work
	if dir == "" {
		d, err := os.MkdirTemp("", "kmsbridge-bench-")
		check(err)
		defer os.RemoveAll(d)
		dir = d
	}
	b := &bench{dir: dir, log: log}
	b.emu = b.startEmulator()
	defer b.emu.stop()
	var ps []int
	for _, s := range strings.Split(*parallels, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		ps = append(ps, p)
	}
	r := &report{}
	r.printf("Measured %s on %s with %d CPUs visible; KMS latency %v per request (%s); wrapping key %s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), hostname(), numCPU(), *latency, b.emu.latencyHow, *wrapSpec)

	// 1. Bulk imports, quotas off: kmsbridge and the floor, side by side.
	r.printf("## Bulk import, quotas off\n\n| keys | parallel | kmsbridge s | keys/s | floor s | kmsbridge / floor | failed | peak RSS MiB |\n|---|---|---|---|---|---|---|---|\n")
	rates := map[string]float64{}
	for _, set := range []struct {
		name string
		n    int
	}{{"SYMMETRIC_DEFAULT", *keys}, {"HMAC+EC", *mixed}} {
		if set.n == 0 {
			continue
		}
		for _, p := range ps {
			kb := b.runKmsbridge(set.name, set.n, p, true)
			fl := runResult{seconds: kb.seconds}
			if !*skipFloor {
				fl = b.runFloor(set.name, set.n, p)
			}
			rates[fmt.Sprintf("%s/%d", set.name, p)] = kb.seconds
			r.printf("| %d %s | %d | %.1f | %.1f | %.1f | %.2f | %d | %.1f |\n", set.n, set.name, p, kb.seconds, float64(kb.done)/kb.seconds, fl.seconds, kb.seconds/fl.seconds, kb.failed+fl.failed, kb.rssMiB)
		}
	}

	// 2. AWS's documented flow, per key, sequential, extrapolated.
	if *docSample > 0 {
		per := b.runDocumentedFlow(*docSample)
		full := per * float64(*keys)
		r.printf("\n## AWS's documented flow (aws CLI + OpenSSL), per key\n\n%d keys run one after the other: %.2f s per key; extrapolated to %d keys: %.0f s.\n\n", *docSample, per, *keys, full)
		if kb, ok := rates[fmt.Sprintf("SYMMETRIC_DEFAULT/%d", ps[len(ps)-1])]; ok && kb > 0 {
			r.printf("kmsbridge at parallelism %d is **%.0f×** faster than the documented flow for %d keys.\n", ps[len(ps)-1], full/kb, *keys)
		}
	}

	// 3. AWS's default quotas on (client-side limits on, emulator enforcing).
	if *quotaKeys > 0 {
		q := b.runQuota(*quotaKeys, ps[len(ps)-1])
		r.printf("\n## AWS default request quotas on\n\n%d SYMMETRIC_DEFAULT keys at parallelism %d with kmsbridge's default rate limits, the KMS side enforcing AWS's defaults (%s): %d done, %d failed, %d throttled responses; GetParametersForImport (binding quota 0.25/s) sustained %.3f/s between the first and last = **%.0f%%** of the quota; whole run %.3f keys/s.\n",
			q.n, q.p, b.emu.quotaHow, q.done, q.failed, q.throttled, q.gpfiRate, 100*q.gpfiRate/0.25, float64(q.done)/q.seconds)
	}

	// 4. record verify of the 1000-key run's record, and of a large one.
	if b.lastRecord != "" {
		s, entries := b.verifyRecord(b.lastRecord)
		r.printf("\n## record verify\n\n`kmsbridge record verify` of the record of the last %d-key SYMMETRIC_DEFAULT run (%d entries): %.2f s (whole process).\n", *keys, entries, s)
	}
	if *recEntries > 0 {
		s := b.recordVerify(*recEntries)
		r.printf("\n## record verify\n\n`kmsbridge record verify` of a %d-entry record: %.2f s (whole process).\n", *recEntries, s)
	}

	// 5. Growth: one import with thousands of things already there.
	if *fillers > 0 {
		empty, full := b.growth(*fillers)
		r.printf("\n## Cost that grows with what is there\n\nMedian import of one SYMMETRIC_DEFAULT key (in process, no added latency): %.0f ms into an empty token and account, %.0f ms with %d objects in the token and %d keys with aliases in KMS: **%.2f×**.\n", empty*1000, full*1000, *fillers, *fillers, full/empty)
	}
	fmt.Print(r.String())
}

type report struct{ strings.Builder }

func (r *report) printf(f string, a ...any) {
	fmt.Fprintf(&r.Builder, f, a...)
	fmt.Fprintf(os.Stderr, f, a...)
}

type bench struct {
	dir string
	log *slog.Logger
	emu *emulator
	seq int
	// lastRecord is the record of the last SYMMETRIC_DEFAULT run.
	lastRecord string
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bulkbench:", err)
		os.Exit(1)
	}
}

func hostname() string { h, _ := os.Hostname(); return h }

func numCPU() int {
	out, err := exec.Command("nproc").Output()
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// newToken provisions a fresh SoftHSM2 token for one run.
func (b *bench) newToken() *softhsm.Token {
	b.seq++
	tok, err := softhsm.Provision(softhsm.DefaultModule, filepath.Join(b.dir, fmt.Sprintf("tok%d", b.seq)), "bench", softhsm.TestPIN, softhsm.TestSOPIN)
	check(err)
	return tok
}

// keyList writes n keys of set to a CSV; prefix keeps labels and aliases
// unique across runs on one emulator.
func keyList(path, set string, n int, prefix string) {
	var s strings.Builder
	s.WriteString("hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry\n")
	for i := 0; i < n; i++ {
		spec, usage, alg := keySpecOf(set, i)
		fmt.Fprintf(&s, "%s-%05d,true,%s,%s,alias/%s-%05d,%s,%s,true\n", prefix, i, spec, usage, prefix, i, alg, *wrapSpec)
	}
	check(os.WriteFile(path, []byte(s.String()), 0o600))
}

// keySpecOf is key i of a set: spec, usage and a wrapping algorithm
// SoftHSM2 can do.
func keySpecOf(set string, i int) (string, string, string) {
	if set == "SYMMETRIC_DEFAULT" {
		return "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "RSAES_OAEP_SHA_1"
	}
	if i%2 == 0 {
		return "HMAC_256", "GENERATE_VERIFY_MAC", "RSAES_OAEP_SHA_1"
	}
	return "ECC_NIST_P256", "SIGN_VERIFY", "RSA_AES_KEY_WRAP_SHA_1"
}

type runResult struct {
	seconds      float64
	done, failed int
	rssMiB       float64
}

var rssRE = regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`)

// runKmsbridge runs kmsbridge import --from under /usr/bin/time -v.
func (b *bench) runKmsbridge(set string, n, p int, quotasOff bool, extra ...string) runResult {
	tok := b.newToken()
	b.seq++
	prefix := fmt.Sprintf("kb%d", b.seq)
	list := filepath.Join(b.dir, prefix+".csv")
	keyList(list, set, n, prefix)
	args := []string{"-v", *kmsbridgeBin, "import", "--module", softhsm.DefaultModule, "--token-label", tok.Label,
		"--endpoint-url", b.emu.url, "--from", list, "--parallel", strconv.Itoa(p), "--output", "json", "--log-level", "warn"}
	if quotasOff {
		args = append(args, "--kms-rate", "off")
	}
	if *withRecord {
		rec := filepath.Join(b.dir, prefix+".record.jsonl")
		args = append(args, "--record", rec)
		if set == "SYMMETRIC_DEFAULT" && n == *keys {
			b.lastRecord = rec
		}
	}
	args = append(args, extra...)
	cmd := exec.Command("/usr/bin/time", args...)
	cmd.Env = append(os.Environ(), tok.Environ(), "KMSBRIDGE_PIN="+tok.PIN, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	_ = cmd.Run()
	res := runResult{seconds: time.Since(start).Seconds()}
	var out struct{ Summary ceremony.BulkSummary }
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		check(fmt.Errorf("kmsbridge printed no summary: %v\n%s", err, tail(stderr.String())))
	}
	res.done, res.failed = out.Summary.Done, out.Summary.Failed+out.Summary.NotStarted
	if m := rssRE.FindStringSubmatch(stderr.String()); m != nil {
		kb, _ := strconv.ParseFloat(m[1], 64)
		res.rssMiB = kb / 1024
	}
	if res.failed > 0 {
		for _, r := range out.Summary.Results {
			if r.Status != ceremony.StatusDone {
				b.log.Warn("key failed", "key", r.HSMLabel, "error", firstLine(r.Error))
				break
			}
		}
	}
	b.log.Info("kmsbridge run", "set", set, "keys", n, "parallel", p, "seconds", res.seconds, "done", res.done, "failed", res.failed, "rss_mib", res.rssMiB)
	return res
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// emulator is the kms-emulator behind a proxy that adds latency (and, for
// the quota run, throttling) when the emulator cannot itself.
type emulator struct {
	url, direct           string
	latencyHow, quotaHow  string
	cmd                   *exec.Cmd
	srv                   *http.Server
	proxy                 *proxy
	nativeLat, nativeQuot bool
}

func (e *emulator) stop() {
	if e.srv != nil {
		_ = e.srv.Close()
	}
	if e.cmd != nil {
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
	}
}

// startEmulator starts kms-emulator, with --latency and a wrapping-key
// pool when it has them, else behind this program's latency proxy.
func (b *bench) startEmulator() *emulator {
	help, _ := exec.Command(*emulatorBin, "--help").CombinedOutput()
	e := &emulator{}
	args := []string{"--listen", "127.0.0.1:0", "--lenient-pkcs8-padding"}
	if bytes.Contains(help, []byte("--latency")) {
		e.nativeLat = true
		args = append(args, "--latency", latency.String())
	}
	e.nativeQuot = bytes.Contains(help, []byte("--quota"))
	if m := regexp.MustCompile(`--(wrapping-key-pool[a-z-]*)`).FindSubmatch(help); m != nil {
		args = append(args, "--"+string(m[1]), "64")
	}
	e.direct = b.spawnEmulator(e, args)
	e.proxy = &proxy{target: e.direct}
	if !e.nativeLat {
		e.proxy.latency = *latency
	}
	e.url = e.proxy.serve(e)
	e.latencyHow = "added by the benchmark's proxy, ±20% jitter"
	if e.nativeLat {
		e.latencyHow = "the emulator's --latency"
	}
	e.quotaHow = "enforced by the benchmark's proxy (ThrottlingException above each quota)"
	return e
}

func (b *bench) spawnEmulator(e *emulator, args []string) string {
	cmd := exec.Command(*emulatorBin, args...)
	stdout, err := cmd.StdoutPipe()
	check(err)
	cmd.Stderr = io.Discard
	check(cmd.Start())
	e.cmd = cmd
	line, err := bufio.NewReader(stdout).ReadString('\n')
	check(err)
	go io.Copy(io.Discard, stdout)
	return strings.TrimPrefix(strings.TrimSpace(line), "listening on ")
}

// proxy forwards KMS requests to the emulator after a delay, and, with
// quotas set, answers ThrottlingException above an operation's rate.
type proxy struct {
	target  string
	latency time.Duration
	mu      sync.Mutex
	quotas  map[string]*rate.Limiter
	// throttled counts ThrottlingException answers; gpfi notes the times
	// of GetParametersForImport calls let through.
	throttled int
	gpfi      []time.Time
}

func (p *proxy) serve(e *emulator) string {
	u, _ := url.Parse(p.target)
	rp := httputil.NewSingleHostReverseProxy(u)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
		if p.latency > 0 {
			j := time.Duration(float64(p.latency) * (0.8 + 0.4*rand.Float64()))
			time.Sleep(j)
		}
		p.mu.Lock()
		lim := p.quotas[op]
		allowed := lim == nil || lim.Allow()
		if !allowed {
			p.throttled++
		} else if op == "GetParametersForImport" {
			p.gpfi = append(p.gpfi, time.Now())
		}
		p.mu.Unlock()
		if !allowed {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."}`))
			return
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := netListen()
	check(err)
	e.srv = &http.Server{Handler: h}
	go e.srv.Serve(ln)
	return "http://" + ln.Addr().String()
}

// setQuotas makes the proxy enforce AWS's default request quotas.
func (p *proxy) setQuotas(rl kmsimport.RateLimits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quotas = map[string]*rate.Limiter{}
	for op, rps := range rl {
		burst := int(rps)
		if burst < 1 {
			burst = 1
		}
		p.quotas[op] = rate.NewLimiter(rate.Limit(rps), burst)
	}
	p.throttled, p.gpfi = 0, nil
}

type quotaResult struct {
	n, p, done, failed, throttled int
	seconds, gpfiRate             float64
}

// runQuota imports n keys with kmsbridge's default limits while the KMS
// side throttles above AWS's defaults.
func (b *bench) runQuota(n, p int) quotaResult {
	b.emu.proxy.setQuotas(kmsimport.DefaultRateLimits())
	defer b.emu.proxy.setQuotas(nil)
	r := b.runKmsbridge("SYMMETRIC_DEFAULT", n, p, false)
	b.emu.proxy.mu.Lock()
	defer b.emu.proxy.mu.Unlock()
	q := quotaResult{n: n, p: p, done: r.done, failed: r.failed, throttled: b.emu.proxy.throttled, seconds: r.seconds}
	if g := b.emu.proxy.gpfi; len(g) > 1 {
		q.gpfiRate = float64(len(g)-1) / g[len(g)-1].Sub(g[0]).Seconds()
	}
	return q
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

var _ = context.Background
