package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	kms "cloud.google.com/go/kms/apiv1"
	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kmsbridge/kmsbridge/kmsimport/gcp"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// gcpEmulator is a running gcp-kms-emulator and Google's own client to it.
type gcpEmulator struct {
	URL   string
	Roots string // dir with manufacturer-root.pem and owner-root.pem
	REST  string // with --rest-listen: the REST front end's URL
	KMS   *kms.KeyManagementClient
}

var buildGCPEmu sync.Once

// ownRoots are the startGCPEmulator arguments of an emulator whose trust
// roots no other emulator of the run shares: it runs without the test key
// cache (TestMain), from whose first pairs every other emulator makes its
// attestation authority (gcpemu.Options.Authority).
var ownRoots = []string{"--test-key-cache", ""}

func startGCPEmulator(t *testing.T, args ...string) *gcpEmulator {
	t.Helper()
	buildGCPEmu.Do(func() {
		if _, err := os.Stat(filepath.Join(binDir, "gcp-kms-emulator")); err == nil {
			return // prebuilt
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "gcp-kms-emulator"), "./cmd/gcp-kms-emulator")
		cmd.Dir = "../.."
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("building gcp-kms-emulator: %v", err)
		}
	})
	roots := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "gcp-kms-emulator"), append([]string{"--roots-dir", roots}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		chargeCPU(t, "gcp-kms-emulator", cmd.ProcessState)
		if t.Failed() {
			t.Logf("gcp-kms-emulator log:\n%s", logs.String())
		}
	})
	lines := bufio.NewReader(stdout)
	line, err := lines.ReadString('\n')
	if err != nil {
		t.Fatalf("gcp-kms-emulator printed no first line: %v\n%s", err, logs.String())
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q", line)
	}
	var rest string
	for _, a := range args {
		if a == "--rest-listen" {
			second, err := lines.ReadString('\n')
			if rest, ok = strings.CutPrefix(strings.TrimSpace(second), "rest on "); err != nil || !ok || !strings.HasPrefix(rest, "http://127.0.0.1:") {
				t.Fatalf("second line %q %v", second, err)
			}
		}
	}
	go io.Copy(io.Discard, lines)
	c, err := kms.NewKeyManagementClient(context.Background(), option.WithEndpoint(strings.TrimPrefix(url, "http://")),
		option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &gcpEmulator{URL: url, Roots: roots, KMS: c, REST: rest}
}

const (
	gcpProject  = "test-project"
	gcpLocation = "us-central1"
	gcpRing     = "projects/test-project/locations/us-central1/keyRings/ring"
)

// gcpArgs are the flags of an import into ring/cryptoKey on e.
func (e *gcpEmulator) args(tokenLabel, state, cryptoKey string, extra ...string) []string {
	return append([]string{"import", "--cloud", "gcp", "--endpoint-url", e.URL, "--allow-endpoint", e.URL, "--gcp-project", gcpProject, "--gcp-location", gcpLocation,
		"--key-ring", "ring", "--crypto-key", cryptoKey, "--token-label", tokenLabel, "--state-dir", state,
		"--gcp-manufacturer-root", filepath.Join(e.Roots, "manufacturer-root.pem"), "--gcp-owner-root", filepath.Join(e.Roots, "owner-root.pem")}, extra...)
}

func gcpImportJSON(t *testing.T, tok *softhsm.Token, args ...string) gcp.Result {
	t.Helper()
	r := kmsbridge(t, tok, append(args, "--output", "json")...)
	if r.Code != 0 {
		t.Fatalf("kmsbridge %v: exit %d\nstderr:\n%s\nstdout:\n%s", args, r.Code, r.Stderr, r.Stdout)
	}
	var res gcp.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("no JSON result: %v\n%s", err, r.Stdout)
	}
	return res
}

// versions lists a crypto key's versions through Google's client.
func (e *gcpEmulator) versions(t *testing.T, key string) []*kmspb.CryptoKeyVersion {
	t.Helper()
	var out []*kmspb.CryptoKeyVersion
	it := e.KMS.ListCryptoKeyVersions(context.Background(), &kmspb.ListCryptoKeyVersionsRequest{Parent: key})
	for {
		v, err := it.Next()
		if err == iterator.Done {
			return out
		}
		if err != nil {
			return out // NOT_FOUND: no key, no versions
		}
		out = append(out, v)
	}
}

func (e *gcpEmulator) exists(t *testing.T, name string) bool {
	t.Helper()
	ctx := context.Background()
	var err error
	switch {
	case strings.Contains(name, "/cryptoKeys/"):
		_, err = e.KMS.GetCryptoKey(ctx, &kmspb.GetCryptoKeyRequest{Name: name})
	default:
		_, err = e.KMS.GetKeyRing(ctx, &kmspb.GetKeyRingRequest{Name: name})
	}
	return err == nil
}
