package kmsemu

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
)

// TestRSA4096WrappingKeysComeFromThePool asks for RSA_4096 parameters
// repeatedly: after the first (generated on demand) the pool refills in the
// background, later calls are served from it, every pair is distinct, and
// an import through a 4096-bit key works.
func TestRSA4096WrappingKeysComeFromThePool(t *testing.T) {
	t.Parallel()
	e := newEnvFreshKeys(t, Options{})
	keyID := e.externalKey(t)
	get := func(t *testing.T) *kms.GetParametersForImportOutput {
		return e.params(t, keyID, types.AlgorithmSpecRsaAesKeyWrapSha256, types.WrappingKeySpecRsa4096)
	}
	first := get(t)

	// Wait for the background refill to fill the RSA_4096 pool.
	sp := func() *specPool {
		e.srv.pool.mu.Lock()
		defer e.srv.pool.mu.Unlock()
		return e.srv.pool.specs["RSA_4096"]
	}()
	if sp == nil {
		t.Fatal("the first RSA_4096 request started no pool")
	}
	// The limit only ends a test whose pool never fills: two RSA-4096
	// generations take seconds, far more on a loaded machine under -race.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for len(sp.ready) < cap(sp.ready) {
		select {
		case <-wctx.Done():
			t.Fatalf("pool holds %d of %d RSA_4096 keys after 5 minutes", len(sp.ready), cap(sp.ready))
		case <-time.After(50 * time.Millisecond):
		}
	}
	onDemandBefore := e.srv.pool.stats()

	// No time is asserted: the on-demand count says the pool served it.
	second := get(t)
	if got := e.srv.pool.stats(); got != onDemandBefore {
		t.Errorf("on-demand generations went from %d to %d: the pooled key was not used", onDemandBefore, got)
	}
	if bytes.Equal(first.PublicKey, second.PublicKey) {
		t.Fatal("two RSA_4096 calls returned the same public key")
	}
	pub, err := x509.ParsePKIXPublicKey(second.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if n := pub.(*rsa.PublicKey).N.BitLen(); n != 4096 {
		t.Fatalf("modulus = %d bits", n)
	}

	material := randBytes(t, 32)
	_, err = e.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(keyID),
		ImportToken:          second.ImportToken,
		EncryptedKeyMaterial: wrap(t, second.PublicKey, types.AlgorithmSpecRsaAesKeyWrapSha256, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	if err != nil {
		t.Fatalf("ImportKeyMaterial through RSA_4096: %v", err)
	}
	if got := e.kcv(t, keyID).KeyCheckValue; got != keyCheckValue(material) {
		t.Errorf("KCV %s, want %s", got, keyCheckValue(material))
	}
}

func TestPoolAfterClose(t *testing.T) {
	t.Parallel()
	p := newKeyPool(nil, true, nil)
	p.close()
	k, err := p.get("RSA_2048")
	if err != nil || k.N.BitLen() != 2048 {
		t.Fatalf("get after close = %v, %v; want an on-demand RSA-2048 key", k, err)
	}
	if _, err := p.get("RSA_1024"); err == nil {
		t.Error("get of an unknown spec succeeded")
	}
}

// TestSizedPoolRefillsOnlyWhileIdle takes a sized pool's key pairs while
// requests keep coming: no generation competes with them, and once the
// emulator is idle the pool fills again.
func TestSizedPoolRefillsOnlyWhileIdle(t *testing.T) {
	t.Parallel()
	p := newKeyPool(map[string]int{"RSA_2048": 2}, true, nil)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	p.touch()
	for range 2 {
		if _, err := p.get("RSA_2048"); err != nil {
			t.Fatal(err)
		}
	}
	busyUntil := time.Now().Add(4 * idleGap)
	for time.Now().Before(busyUntil) {
		p.touch()
		if n := p.ready()["RSA_2048"]; n != 0 {
			t.Fatalf("%d key pairs generated while requests kept coming, want none", n)
		}
		time.Sleep(idleGap / 5)
	}
	if err := p.wait(ctx); err != nil {
		t.Fatalf("the pool did not fill again once idle: %v", err)
	}
	if got := p.stats(); got != 0 {
		t.Errorf("%d pairs generated on demand, want none", got)
	}
}

// TestPoolWithoutRefillDoesNoBackgroundWork: with refills off the sized
// pool is filled once and never again, and other specs get no pool, so a
// measurement sees no key generation between its requests.
func TestPoolWithoutRefillDoesNoBackgroundWork(t *testing.T) {
	t.Parallel()
	p := newKeyPool(map[string]int{"RSA_2048": 2}, false, nil)
	defer p.close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.wait(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := p.get("RSA_2048"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * idleGap)
	if n := p.ready()["RSA_2048"]; n != 0 {
		t.Errorf("%d key pairs generated in the background after the pool was taken, want none", n)
	}
	if _, err := p.get("RSA_3072"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * idleGap)
	if n, ok := p.ready()["RSA_3072"]; ok || n != 0 {
		t.Errorf("an unsized spec got a refilling pool (%d ready), want none", n)
	}
	if got := p.stats(); got != 1 {
		t.Errorf("%d pairs generated on demand, want 1 (the RSA_3072 one)", got)
	}
}

// TestTestKeyCacheIsReusedAcrossRunsNeverWithinOne: with a test key cache
// a second pool over the same directory hands out the first one's pairs,
// in order, and no pool hands out a pair twice or keeps a background pool.
func TestTestKeyCacheIsReusedAcrossRunsNeverWithinOne(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	run := func() (*rsa.PrivateKey, *rsa.PrivateKey, int) {
		src, err := emukeys.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		p := newKeyPool(nil, true, src)
		defer p.close()
		a, err := p.get("RSA_2048")
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.get("RSA_2048")
		if err != nil {
			t.Fatal(err)
		}
		if a.N.Cmp(b.N) == 0 {
			t.Fatal("one emulator run handed out the same wrapping key pair twice")
		}
		if r := p.ready(); len(r) != 0 {
			t.Errorf("a background pool runs beside the test key cache: %v", r)
		}
		hits, _ := src.Stats()
		return a, b, hits
	}
	a1, b1, hits := run()
	if hits != 0 {
		t.Fatalf("the first run found %d cached pairs in an empty cache", hits)
	}
	a2, b2, hits := run()
	if hits != 2 || a1.N.Cmp(a2.N) != 0 || b1.N.Cmp(b2.N) != 0 {
		t.Fatalf("the second run took %d pairs from the cache, want the first run's 2 in order", hits)
	}
}

// TestResetRegionGivesItsWrappingKeysBack: with a test key cache, the
// wrapping key pairs a Region's GetParametersForImport calls got are handed
// out again once KmsBridgeResetRegion has forgotten the Region, oldest
// first; until then no two calls, in any Region, get the same pair.
func TestResetRegionGivesItsWrappingKeysBack(t *testing.T) {
	t.Parallel()
	src, err := emukeys.Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, Options{TestKeys: src})
	eu, ap := regionClient(e.url, "eu-west-1"), regionClient(e.url, "ap-south-1")
	params := func(c *kms.Client) string {
		t.Helper()
		k, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: k.KeyMetadata.KeyId,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			t.Fatal(err)
		}
		return string(out.PublicKey)
	}
	seen := map[string]bool{}
	fresh := func(c *kms.Client) string {
		t.Helper()
		pub := params(c)
		if seen[pub] {
			t.Fatal("a wrapping key pair was handed out twice with no Region reset")
		}
		seen[pub] = true
		return pub
	}
	eu1, eu2 := fresh(eu), fresh(eu)
	fresh(ap)
	var out struct{ Region string }
	e.rawOK(t, "KmsBridgeResetRegion", map[string]any{"Region": "eu-west-1"}, &out)
	if params(ap) != eu1 || params(eu) != eu2 {
		t.Fatal("after eu-west-1 was reset, its wrapping key pairs were not handed out again, oldest first")
	}
	fresh(ap) // eu-west-1's pairs are taken again: a new one
	if h, m := src.Stats(); h != 2 || m != 4 {
		t.Errorf("test key cache: %d pairs reused, %d generated; want 2, 4", h, m)
	}
}
