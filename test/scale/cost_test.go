// Package scale_test shows that what an import costs does not grow with
// what is already there: it counts the KMS requests and PKCS#11 object
// searches of one import into an empty token and account, and again with
// thousands of objects in the token and keys and aliases in KMS. It counts
// calls, never time; the time ratio is a figure of make bench.
package scale_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/ceremony"
	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsemu"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// countingP11 counts the object searches and attribute reads a token sees.
type countingP11 struct {
	hsm.PKCS11
	findInits, finds, attrReads atomic.Int64
}

func (c *countingP11) FindObjectsInit(sh pkcs11.SessionHandle, t []*pkcs11.Attribute) error {
	c.findInits.Add(1)
	return c.PKCS11.FindObjectsInit(sh, t)
}

func (c *countingP11) FindObjects(sh pkcs11.SessionHandle, max int) ([]pkcs11.ObjectHandle, bool, error) {
	c.finds.Add(1)
	return c.PKCS11.FindObjects(sh, max)
}

func (c *countingP11) GetAttributeValue(sh pkcs11.SessionHandle, o pkcs11.ObjectHandle, a []*pkcs11.Attribute) ([]*pkcs11.Attribute, error) {
	c.attrReads.Add(1)
	return c.PKCS11.GetAttributeValue(sh, o, a)
}

func (c *countingP11) snapshot() [3]int64 {
	return [3]int64{c.findInits.Load(), c.finds.Load(), c.attrReads.Load()}
}

// fillers is how many objects and keys/aliases the full side has:
// KMSBRIDGE_SCALE_FILLERS, default 2000. What is tested is that the counts
// do not change, not a size: 2000 is past the largest page on either side
// (1000 keys or aliases per KMS List page, 64 handles per kmsbridge
// C_FindObjects), so a cost per key or per page shows as surely as with
// more, and filling SoftHSM2's file store is most of this test's time
// (BENCHMARKS.md times imports among 10000).
func fillers(t *testing.T) int {
	if s := os.Getenv("KMSBRIDGE_SCALE_FILLERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KMSBRIDGE_SCALE_FILLERS=%q: want a whole number", s)
		}
		return n
	}
	return 2000
}

func TestImportCostDoesNotGrowWithWhatIsThere(t *testing.T) {
	n := fillers(t)
	tok := softhsm.NewTestToken(t, "scale")
	var counter *countingP11
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Trace(func(p hsm.PKCS11) hsm.PKCS11 {
		counter = &countingP11{PKCS11: p}
		return counter
	})
	tk, err := m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(kmsemu.New(kmsemu.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	lim := awskms.NewLimiter(nil) // no limits: it only counts
	api, err := awskms.NewClient(context.Background(), awskms.ClientOptions{Region: "us-east-1", EndpointURL: srv.URL, AllowEndpoint: srv.URL, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}

	importOne := func(label string) (map[string]int64, [3]int64) {
		t.Helper()
		kmsBefore, p11Before := lim.Calls(), counter.snapshot()
		im := &awskms.Importer{KMS: api, Token: tk}
		if _, err := im.Run(context.Background(), awskms.Request{
			KeyLabel: label, Generate: true, KeySpec: "SYMMETRIC_DEFAULT", Alias: "alias/" + label,
			WrappingAlgorithm: "RSAES_OAEP_SHA_1", WrappingKeySpec: types.WrappingKeySpecRsa2048,
			Expiry: awskms.Expiry{NoExpiry: true},
		}); err != nil {
			t.Fatalf("import %s: %v", label, err)
		}
		kmsAfter, p11After := lim.Calls(), counter.snapshot()
		kmsCalls := map[string]int64{}
		for op, c := range kmsAfter {
			if d := c - kmsBefore[op]; d > 0 {
				kmsCalls[op] = d
			}
		}
		var p11 [3]int64
		for i := range p11 {
			p11[i] = p11After[i] - p11Before[i]
		}
		return kmsCalls, p11
	}

	// The token's capability probes run once per Token, on its first
	// import: a cost that does not grow either, kept out of the comparison.
	importOne("warm-up")
	emptyKMS, emptyP11 := importOne("first")
	fill(t, tk, counter, api, n)
	fullKMS, fullP11 := importOne("second")

	if fmt.Sprint(emptyKMS) != fmt.Sprint(fullKMS) {
		t.Errorf("KMS requests per import: %v into an empty account, %v with %d keys and aliases", emptyKMS, fullKMS, n)
	}
	if emptyP11 != fullP11 {
		t.Errorf("PKCS#11 (C_FindObjectsInit, C_FindObjects, C_GetAttributeValue) per import: %v into an empty token, %v with %d objects", emptyP11, fullP11, n)
	}
	// One GetParametersForImport per import, the alias found with one
	// DescribeKey and never by listing, the label with one search: on
	// SoftHSM2's file store each search reads every object in the token.
	if fullKMS["GetParametersForImport"] != 1 || fullKMS["ListAliases"] != 0 {
		t.Errorf("KMS requests per import %v: want exactly one GetParametersForImport and no ListAliases", fullKMS)
	}
	// The generated key read back in one call, and described in two.
	if fullP11[2] != 3 {
		t.Errorf("C_GetAttributeValue per import: %d, want 3 (one for the read-back, two for the key's description): each is a round trip to a network HSM", fullP11[2])
	}
	if fullP11[0] != 1 {
		t.Errorf("C_FindObjectsInit per import: %d, want 1 (the label's search; generating does not search again)", fullP11[0])
	}
	t.Logf("per import: KMS %v; PKCS#11 find-inits, finds, attribute reads %v; with %d objects and keys/aliases alike", fullKMS, fullP11, n)

	// A bulk run reads the token's labels once, with one search, and no
	// key searches for its label again.
	const bulk = 12
	var csv strings.Builder
	csv.WriteString("hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry\n")
	for i := 0; i < bulk; i++ {
		fmt.Fprintf(&csv, "bulk-%02d,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/bulk-%02d,RSAES_OAEP_SHA_1,RSA_2048,true\n", i, i)
	}
	list := filepath.Join(t.TempDir(), "keys.csv")
	if err := os.WriteFile(list, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ceremony.LoadKeys(list, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	before, kmsBefore := counter.snapshot(), lim.Calls()
	sum := (&ceremony.Runner{File: f, Clouds: ceremony.Clouds{AWS: ceremony.AWSClients{KMS: api}}, Token: tk}).RunAll(context.Background(), f.Keys, 4, nil)
	if sum.Done != bulk {
		t.Fatalf("bulk run: %d of %d done: %+v", sum.Done, bulk, sum.Results)
	}
	// Each key's plan looks its alias up once, and the import does not
	// look again: per key, that DescribeKey and the verify's.
	if got := lim.Calls()["DescribeKey"] - kmsBefore["DescribeKey"]; got != 2*bulk {
		t.Errorf("DescribeKey in a bulk run of %d keys: %d, want %d (the plan's alias lookup and the verify's, per key)", bulk, got, 2*bulk)
	}
	if got := counter.snapshot()[0] - before[0]; got != 1 {
		t.Errorf("C_FindObjectsInit in a bulk run of %d generated keys into a token of %d objects: %d, want 1 (the token's labels, read once)", bulk, n, got)
	}
}

// fill puts n data objects in the token and n keys, each with an alias,
// in KMS.
func fill(t *testing.T, tk *hsm.Token, p hsm.PKCS11, api awskms.API, n int) {
	t.Helper()
	slot := tk.Identity().Slot
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := p.CreateObject(sh, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, fmt.Sprintf("filler-%05d", i)),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, []byte("filler")),
		}); err != nil {
			t.Fatalf("filler object %d: %v", i, err)
		}
	}
	_ = p.CloseSession(sh)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				out, err := api.CreateKey(context.Background(), &kms.CreateKeyInput{})
				if err == nil {
					_, err = api.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(fmt.Sprintf("alias/filler-%05d", i)), TargetKeyId: out.KeyMetadata.KeyId})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
