package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// growthImports is how many single imports growth times in each state;
// its bulk runs import -growth-bulk keys, growthParallel at a time.
const (
	growthImports  = 7
	growthParallel = 8
)

// growthResult is one token kind's growth figure, in seconds: the median
// single import into an empty token and account, with n keys with aliases
// in KMS, and with n keys in the token as well; and one search for a free
// label in the full token, the token's own cost of what grows.
type growthResult struct {
	Token                      string
	Empty, KMSFull, Full, Find float64
	// BulkEmpty and BulkFull time a bulk run of -growth-bulk keys into the
	// empty token and account, and into the full ones.
	BulkEmpty, BulkFull float64
	// Filled is how many keys the token took: fewer than asked when it
	// ran out of room (FillErr says how).
	Filled  int
	FillErr string `json:",omitempty"`
	Err     string `json:",omitempty"`
}

// growthTokens are the token kinds growth can measure, in report order.
var growthTokens = []string{"softhsm2", "nss", "opencryptoki"}

// growthOn measures the growth figure on a fresh token of kind against the
// emulator at url (fresh, with a pool for every import). opencryptoki runs
// in a child process: its module crashes a process that has loaded
// SoftHSM2 (docs/tokens.md), which this one has.
func (b *bench) growthOn(kind, url string, n int) growthResult {
	if kind == "opencryptoki" && !*growthChild {
		return b.growthInChild(kind, url, n)
	}
	res := growthResult{Token: kind}
	tk, raw, closeTok, err := b.growthToken(kind)
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer closeTok()
	api := sdkClient(url)
	b.seq++
	prefix := fmt.Sprintf("gr%d", b.seq)
	timeImports := func(tag string) float64 {
		var ts []float64
		for i := 0; i < growthImports; i++ {
			label := fmt.Sprintf("%s-%s-%d", prefix, tag, i)
			start := time.Now()
			_, err := (&awskms.Importer{KMS: api, Token: tk}).Run(context.Background(), awskms.Request{
				KeyLabel: label, Generate: true, KeySpec: "SYMMETRIC_DEFAULT", Alias: "alias/" + label,
				WrappingAlgorithm: "RSAES_OAEP_SHA_1", WrappingKeySpec: types.WrappingKeySpec(*wrapSpec),
				Expiry: awskms.Expiry{NoExpiry: true},
			})
			check(err)
			ts = append(ts, time.Since(start).Seconds())
		}
		return median(ts)
	}
	timeBulk := func(tag string) float64 {
		list := filepath.Join(b.dir, fmt.Sprintf("%s-%s.csv", prefix, tag))
		keyList(list, "SYMMETRIC_DEFAULT", *growthBulk, prefix+"-"+tag)
		f, err := ceremony.LoadKeys(list, time.Now())
		check(err)
		start := time.Now()
		sum := (&ceremony.Runner{File: f, Clouds: ceremony.Clouds{AWS: ceremony.AWSClients{KMS: api}}, Token: tk}).RunAll(context.Background(), f.Keys, growthParallel, nil)
		if sum.Done != *growthBulk {
			check(fmt.Errorf("growth bulk run on %s: %d of %d keys done: %v", kind, sum.Done, *growthBulk, sum.Err()))
		}
		return time.Since(start).Seconds()
	}
	res.Empty = timeImports("empty")
	res.BulkEmpty = timeBulk("bulkempty")
	fillKMS(api, prefix, n)
	res.KMSFull = timeImports("kmsfull")
	res.Filled, res.FillErr = fillToken(tk, raw, prefix, n)
	res.Full = timeImports("full")
	res.BulkFull = timeBulk("bulkfull")
	var fs []float64
	for i := 0; i < growthImports; i++ {
		start := time.Now()
		_, err := tk.LabelInUse(prefix + "-free")
		check(err)
		fs = append(fs, time.Since(start).Seconds())
	}
	res.Find = median(fs)
	b.log.Info("growth", "token", kind, "empty_s", res.Empty, "kms_full_s", res.KMSFull, "full_s", res.Full, "find_s", res.Find, "bulk_empty_s", res.BulkEmpty, "bulk_full_s", res.BulkFull)
	return res
}

// growthToken provisions a token of kind and opens it, logged in.
func (b *bench) growthToken(kind string) (*hsm.Token, hsm.PKCS11, func(), error) {
	var (
		cfg        hsm.ModuleConfig
		label, pin string
		release    = func() {}
	)
	switch kind {
	case "softhsm2":
		tok := b.newToken()
		cfg, label, pin = hsm.ModuleConfig{Path: tok.Module}, tok.Label, tok.PIN
	case "nss":
		if ok, why := softhsm.NSSAvailable(softhsm.DefaultNSSModule()); !ok {
			return nil, nil, nil, fmt.Errorf("%s", why)
		}
		b.seq++
		tok, err := softhsm.ProvisionNSS("", filepath.Join(b.dir, fmt.Sprintf("nss%d", b.seq)), softhsm.TestPIN)
		if err != nil {
			return nil, nil, nil, err
		}
		cfg, label, pin = hsm.ModuleConfig{Path: tok.Module, Params: tok.Params}, tok.Label, tok.PIN
	case "opencryptoki":
		if ok, why := softhsm.OCKAvailable(); !ok {
			return nil, nil, nil, fmt.Errorf("%s", why)
		}
		tok, err := softhsm.ProvisionOCK("bench", softhsm.TestPIN, softhsm.TestSOPIN)
		if err != nil {
			return nil, nil, nil, err
		}
		cfg, label, pin, release = hsm.ModuleConfig{Path: tok.Module}, tok.Label, tok.PIN, tok.Release
	default:
		return nil, nil, nil, fmt.Errorf("unknown token kind %q (want %s)", kind, strings.Join(growthTokens, ", "))
	}
	m, err := hsm.LoadModule(cfg)
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	var raw hsm.PKCS11
	m.Trace(func(p hsm.PKCS11) hsm.PKCS11 { raw = p; return p })
	tk, err := m.OpenToken(hsm.TokenSelector{Label: label})
	if err == nil {
		err = tk.Login(pin)
	}
	if err != nil {
		m.Close()
		release()
		return nil, nil, nil, err
	}
	return tk, raw, func() { tk.Close(); m.Close(); release() }, nil
}

// growthInChild runs growthOn in a child copy of this program and reads
// its one JSON line.
func (b *bench) growthInChild(kind, url string, n int) growthResult {
	exe, err := os.Executable()
	check(err)
	cmd := exec.Command(exe, "-growth-child", "-growth-token", kind, "-growth-url", url, "-fillers", fmt.Sprint(n), "-wrapping-key-spec", *wrapSpec, "-dir", b.dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	res := growthResult{Token: kind}
	if err != nil {
		res.Err = fmt.Sprintf("child: %v", err)
		return res
	}
	if err := json.Unmarshal(out, &res); err != nil {
		res.Err = fmt.Sprintf("child printed no result: %v: %s", err, out)
	}
	return res
}

// fillKMS creates n keys, each with an alias, 32 at a time.
func fillKMS(api *kms.Client, prefix string, n int) {
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 32 {
				out, err := api.CreateKey(context.Background(), &kms.CreateKeyInput{})
				check(err)
				_, err = api.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(fmt.Sprintf("alias/%s-filler-%05d", prefix, i)), TargetKeyId: out.KeyMetadata.KeyId})
				check(err)
			}
		}(w)
	}
	wg.Wait()
}

// fillToken generates n AES keys in the token, 4 at a time: a token that
// already holds the keys of thousands of tenants. A token that runs out of
// room stops the fill: it returns how many keys it took and why it
// stopped, after making room for the timed imports again.
func fillToken(tk *hsm.Token, raw hsm.PKCS11, prefix string, n int) (int, string) {
	var (
		wg     sync.WaitGroup
		made   atomic.Int64
		mu     sync.Mutex
		reason string
		last   []*hsm.Key
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				k, err := tk.GenerateAfterSearch(fmt.Sprintf("%s-filler-%05d", prefix, i), hsm.AES256(), false)
				mu.Lock()
				if err != nil && reason == "" {
					reason = err.Error()
				}
				stop := reason != ""
				if err == nil {
					made.Add(1)
					last = append(last, k)
				}
				mu.Unlock()
				if stop {
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if reason != "" {
		// Room for the timed imports and the bulk run.
		sh, err := raw.OpenSession(tk.Identity().Slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		check(err)
		for _, k := range last[max(0, len(last)-2*(growthImports+*growthBulk)):] {
			check(raw.DestroyObject(sh, k.Handle))
			made.Add(-1)
		}
		_ = raw.CloseSession(sh)
	}
	return int(made.Load()), reason
}
