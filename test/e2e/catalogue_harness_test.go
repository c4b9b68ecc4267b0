package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/kmsimport"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

// badCase is one bad input of the catalogue: the command line (leading
// K=V words go to the environment), the exit code it must give, and the
// words its error must hold: what is wrong, and what to do next.
type badCase struct {
	name string
	args []string
	code int
	want []string
}

// catalogue is the world one table of bad inputs runs in: one emulator,
// one token, one directory of good and bad files, and the state of all
// three before the first case, which every case must leave as it was.
type catalogue struct {
	emu *emulator
	tok *softhsm.Token
	dir string
	// notKMS is a local HTTP server that answers, but not as KMS.
	notKMS string

	// Made by newCatalogue: an imported HSM key "existing", its KMS key,
	// an AWS_KMS-origin key, a record of that import, PIN files.
	existing awskms.Result
	awsKeyID string
	record   string
	goodPIN  string

	// Made by withSplit: a bundle, its wrapped file, its fingerprint.
	bundle, wrapped, fingerprint string

	base snapshot
	// tokenMu serialises the cases that open the token: SoftHSM2 fails
	// concurrent logins from several processes with CKR_GENERAL_ERROR.
	tokenMu sync.Mutex
}

// newCatalogue builds the shared world for one table.
func newCatalogue(t *testing.T) *catalogue {
	t.Helper()
	c := &catalogue{emu: startEmulator(t), tok: newToken(t), dir: t.TempDir()}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html><body>404 Not Found</body></html>")
	}))
	t.Cleanup(srv.Close)
	c.notKMS = srv.URL
	c.record = c.path("ceremony.jsonl")
	c.existing = importJSON(t, c.tok, "--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapping-key-spec", "RSA_2048",
		"--key-label", "existing", "--generate", "--no-expiry", "--record", c.record)
	out, err := c.emu.KMS.CreateKey(context.Background(), &kms.CreateKeyInput{Origin: types.OriginTypeAwsKms})
	if err != nil {
		t.Fatal(err)
	}
	c.awsKeyID = aws.ToString(out.KeyMetadata.KeyId)
	c.goodPIN = c.file(t, "pin.txt", c.tok.PIN+"\n", 0o600)
	c.file(t, "pin-world.txt", c.tok.PIN+"\n", 0o644)
	c.file(t, "pin-group.txt", c.tok.PIN+"\n", 0o640)
	c.file(t, "pin-empty.txt", "", 0o600)
	c.file(t, "pin-lines.txt", c.tok.PIN+"\nsecond\n", 0o600)
	c.file(t, "big.bin", strings.Repeat("x", 2<<20), 0o600)
	c.file(t, "empty.json", "", 0o600)
	c.file(t, "array.json", "[1,2,3]", 0o600)
	c.file(t, "notjson.json", "<html>not json</html>", 0o600)
	c.file(t, "plain.txt", "hello\n", 0o600)
	if err := syscall.Mkfifo(c.path("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", c.path("zero")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(c.path("subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	return c
}

// withSplit adds a prepared bundle and the file wrap made from it.
func (c *catalogue) withSplit(t *testing.T) {
	t.Helper()
	c.bundle, c.wrapped = c.path("b.json"), c.path("w.json")
	if r := kmsbridge(t, nil, "prepare", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--wrapping-algorithm", "RSAES_OAEP_SHA_1",
		"--wrapping-key-spec", "RSA_2048", "--out", c.bundle); r.Code != 0 {
		t.Fatalf("prepare: %s", r.Stderr)
	}
	var b kmsimport.Bundle
	readJSON(t, c.bundle, &b)
	c.fingerprint = b.PublicKeySha256
	if r := kmsbridge(t, c.tok, "wrap", "--allow-endpoint", c.emu.URL, "--token-label", c.tok.Label, "--bundle", c.bundle, "--expect-fingerprint", c.fingerprint,
		"--key-label", "wrapped", "--generate", "--out", c.wrapped); r.Code != 0 {
		t.Fatalf("wrap: %s", r.Stderr)
	}
}

func (c *catalogue) path(name string) string { return filepath.Join(c.dir, name) }

// file writes a file of the catalogue and returns its path.
func (c *catalogue) file(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := c.path(name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// variant writes a copy of the JSON file from with edit applied.
func (c *catalogue) variant(t *testing.T, from, name string, edit func(m map[string]any)) string {
	t.Helper()
	m := map[string]any{}
	readJSON(t, from, &m)
	edit(m)
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return c.file(t, name, string(raw), 0o600)
}

// snapshot is everything a bad input must leave as it was.
type snapshot struct {
	KMS, Token, Files string
}

// snap reads the KMS keys (state, origin, tags) and aliases through the
// emulator, the token's object files, and the catalogue's files.
func (c *catalogue) snap(t *testing.T) snapshot {
	t.Helper()
	return snapshot{KMS: c.kmsState(t), Token: treeState(t, c.tok.Dir, "token.object"), Files: treeState(t, c.dir, "")}
}

// kmsState lists, in every Region the emulator has served (a bad input
// must not create a key in a replica Region either), the keys (state,
// origin, tags) and aliases. Regions with neither are left out, so that a
// read in a new Region is no change.
func (c *catalogue) kmsState(t *testing.T) string {
	t.Helper()
	var calls struct{ RegionCalls map[string]map[string]int }
	c.emu.raw(t, "KmsBridgeListFaults", map[string]any{}, &calls)
	regions := []string{"us-east-1"}
	for r := range calls.RegionCalls {
		if r != "" && r != "us-east-1" {
			regions = append(regions, r)
		}
	}
	sort.Strings(regions[1:])
	var b strings.Builder
	for _, r := range regions {
		client := c.emu.KMS
		if r != "us-east-1" {
			client = kms.New(client.Options(), func(o *kms.Options) { o.Region = r })
		}
		if s := regionState(t, client); s != "" {
			fmt.Fprintf(&b, "Region %s\n%s", r, s)
		}
	}
	return b.String()
}

// regionState is kmsState for the one Region client serves.
func regionState(t *testing.T, client *kms.Client) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	keys, err := client.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(1000)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range keys.Keys {
		ids = append(ids, aws.ToString(k.KeyId))
	}
	sort.Strings(ids)
	for _, id := range ids {
		d, err := client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "key %s %s %s\n", id, d.KeyMetadata.KeyState, d.KeyMetadata.Origin)
		tags, err := client.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		var ts []string
		for _, tg := range tags.Tags {
			ts = append(ts, aws.ToString(tg.TagKey)+"="+aws.ToString(tg.TagValue))
		}
		sort.Strings(ts)
		fmt.Fprintf(&b, "  tags %q\n", ts)
	}
	aliases, err := client.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(100)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 && len(aliases.Aliases) == 0 {
		return ""
	}
	var as []string
	for _, a := range aliases.Aliases {
		as = append(as, aws.ToString(a.AliasName)+"->"+aws.ToString(a.TargetKeyId))
	}
	sort.Strings(as)
	fmt.Fprintf(&b, "aliases %q\n", as)
	return b.String()
}

// treeState lists the files under dir with their modes and digests,
// reading only regular files (never the FIFO or the /dev/zero link).
func treeState(t *testing.T, dir, skip string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		// A parallel case's write check makes and removes a probe file.
		if d.Name() == skip || strings.HasSuffix(d.Name(), ".lock") || strings.HasPrefix(d.Name(), ".kmsbridge-write-check-") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if info.Mode().IsRegular() {
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(raw)
			sum = hex.EncodeToString(h[:8])
		}
		fmt.Fprintf(&b, "%s %v %s\n", rel, info.Mode(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// opensToken reports whether a command line may open the token.
func opensToken(args []string) bool {
	for _, a := range args {
		if a == "--token-label" || a == "--token-serial" || a == "--slot" || strings.HasPrefix(a, "--ceremony") || a == "run" {
			return true
		}
	}
	return false
}

// run runs each case in parallel against the catalogue and checks its
// exit code, its message, and that it changed nothing in KMS or in the
// catalogue's files; after all of them, that the token is as it was.
func (c *catalogue) run(t *testing.T, cases []badCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("case %q is in the table twice", tc.name)
		}
		seen[tc.name] = true
	}
	c.base = c.snap(t)
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			tc := tc
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				env := []string{"KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule, "KMSBRIDGE_PIN=" + c.tok.PIN, c.tok.Environ()}
				if opensToken(tc.args) {
					c.tokenMu.Lock()
					defer c.tokenMu.Unlock()
				}
				r := runBinary(t, env, tc.args...)
				if r.Code != tc.code {
					t.Errorf("exit %d, want %d\nstderr: %s", r.Code, tc.code, r.Stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(r.Stderr, w) {
						t.Errorf("stderr lacks %q:\n%s", w, r.Stderr)
					}
				}
				if strings.Contains(r.Stderr, "goroutine ") || strings.Contains(r.Stderr, "panic:") {
					t.Errorf("a Go runtime trace reached the user:\n%s", r.Stderr)
				}
				if len(r.Stderr) > 4000 {
					t.Errorf("stderr is %d bytes: errors must quote excerpts, not whole values", len(r.Stderr))
				}
				if got := c.kmsState(t); got != c.base.KMS {
					t.Errorf("KMS changed:\nbefore:\n%s\nafter:\n%s", c.base.KMS, got)
				}
				if got := treeState(t, c.dir, ""); got != c.base.Files {
					t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", c.base.Files, got)
				}
			})
		}
	})
	if got := treeState(t, c.tok.Dir, "token.object"); got != c.base.Token {
		t.Errorf("token objects changed:\nbefore:\n%s\nafter:\n%s", c.base.Token, got)
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
