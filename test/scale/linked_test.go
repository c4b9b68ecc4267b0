package scale_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/kmsemu"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// opCounter counts the requests the emulator serves, by operation (KMS's
// X-Amz-Target, or the tagging API's RPC v2 path).
type opCounter struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
}

func (c *opCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.Header.Get("X-Amz-Target")
	if op == "" {
		op = r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	}
	op = op[strings.LastIndex(op, ".")+1:]
	c.mu.Lock()
	c.n[op]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *opCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// TestLinkedKMSKeysCostDoesNotGrowWithTheAccount: importing an HSM key
// that exists into a new KMS key asks the ownership authority whether the
// HSM key already backs a KMS key. That costs the same requests in an
// empty account as among thousands of tagged keys: no ListKeys, no tag
// read per key, one search by tag.
func TestLinkedKMSKeysCostDoesNotGrowWithTheAccount(t *testing.T) {
	n := fillers(t)
	tok := softhsm.NewTestToken(t, "linked")
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tk, err := m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	counter := &opCounter{next: kmsemu.New(kmsemu.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}), n: map[string]int{}}
	srv := httptest.NewServer(counter)
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	api, err := awskms.NewClient(context.Background(), awskms.ClientOptions{Region: "us-east-1", EndpointURL: srv.URL, AllowEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	importExisting := func(label string) map[string]int {
		t.Helper()
		if _, err := tk.Generate(label, hsm.AES256(), false); err != nil {
			t.Fatal(err)
		}
		before := counter.snapshot()
		im := &awskms.Importer{KMS: api, Token: tk}
		if _, err := im.Run(context.Background(), awskms.Request{KeyLabel: label, WrappingAlgorithm: "RSAES_OAEP_SHA_1",
			WrappingKeySpec: types.WrappingKeySpecRsa2048, Expiry: awskms.Expiry{NoExpiry: true}}); err != nil {
			t.Fatalf("import %s: %v", label, err)
		}
		calls := map[string]int{}
		for op, c := range counter.snapshot() {
			if d := c - before[op]; d > 0 {
				calls[op] = d
			}
		}
		return calls
	}
	importExisting("warm-up")
	empty := importExisting("first")
	serial := tk.Identity().Serial
	for i := 0; i < n; i++ {
		if _, err := api.CreateKey(context.Background(), &kms.CreateKeyInput{Origin: types.OriginTypeExternal, Tags: []types.Tag{
			{TagKey: aws.String(awskms.TagHSMKeyID), TagValue: aws.String(fmt.Sprintf("%032x", i))},
			{TagKey: aws.String(awskms.TagTokenSerial), TagValue: aws.String(serial)},
		}}); err != nil {
			t.Fatal(err)
		}
	}
	full := importExisting("second")
	if fmt.Sprint(empty) != fmt.Sprint(full) {
		t.Errorf("requests per import of an existing HSM key: %v into an empty account, %v with %d tagged keys", empty, full, n)
	}
	if full["ListKeys"] != 0 || full["GetResources"] != 1 || full["ListResourceTags"] > 1 {
		t.Errorf("requests per import %v: want no ListKeys, one GetResources, at most one ListResourceTags", full)
	}
	t.Logf("per import of an existing HSM key among %d tagged KMS keys: %v", n, full)
}
