package aws

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/kmsemu"
)

// splitProxy is a reverse proxy that writes each response's headers and
// body in two writes with a pause between, as real proxies and networks
// may; it counts the requests that reach the emulator behind it.
type splitProxy struct {
	backend http.Handler
	mu      sync.Mutex
	seen    map[string]int
}

func (p *splitProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.seen[r.Header.Get("X-Amz-Target")+" "+string(body)]++
	p.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	p.backend.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", itoa(rec.Body.Len()))
	w.WriteHeader(rec.Code)
	w.(http.Flusher).Flush()
	time.Sleep(20 * time.Millisecond)
	w.Write(rec.Body.Bytes())
}

func itoa(n int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// Through a proxy that splits header and body writes, every request
// kmsbridge's client makes reaches KMS exactly once: nothing closes the
// connection between the headers and the body and makes the SDK re-send.
func TestClientSendsEachRequestOnceThroughSplittingProxy(t *testing.T) {
	emu := kmsemu.New(kmsemu.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer emu.Close()
	proxy := &splitProxy{backend: emu, seen: map[string]int{}}
	srv := httptest.NewServer(proxy)
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	api, err := NewClient(context.Background(), ClientOptions{Region: "us-east-1", EndpointURL: srv.URL, AllowEndpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 40
	for i := 0; i < n; i++ {
		// Each CreateKey has a distinct description, so a re-sent one is
		// seen twice.
		out, err := api.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, Description: aws.String("k" + itoa(i))})
		if err != nil {
			t.Fatalf("CreateKey %d: %v", i, err)
		}
		if _, err := api.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: out.KeyMetadata.KeyId}); err != nil {
			t.Fatalf("DescribeKey %d: %v", i, err)
		}
		if _, err := api.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(int32(i + 1))}); err != nil {
			t.Fatalf("ListAliases %d: %v", i, err)
		}
	}
	keys, err := api.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.Keys) != n {
		t.Errorf("%d keys in KMS after %d CreateKey calls", len(keys.Keys), n)
	}
	for req, count := range proxy.seen {
		if count != 1 {
			t.Errorf("request reached KMS %d times: %.80s", count, req)
		}
	}
}
