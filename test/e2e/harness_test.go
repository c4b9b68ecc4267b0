// Package e2e drives the built kmsbridge binary as a user would: against
// real SoftHSM2 tokens, the kms-emulator binary on 127.0.0.1 (and
// nsmithuk/local-kms for a cross-check), through the real aws-sdk-go-v2
// client, with OpenSSL as the independent decoder of what the HSM wrapped.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/emukeys"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
	"github.com/kmsbridge/kmsbridge/softhsm"
)

var binDir string

func TestMain(m *testing.M) {
	softhsm.RunOCKHelper()
	dir, err := os.MkdirTemp("", "kmsbridge-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// One test key cache for every emulator this binary starts (the
	// kms-emulator and gcp-kms-emulator processes inherit the variable,
	// the in-process Azure vaults open it): an RSA-4096 wrapping key costs
	// seconds of CPU, and each emulator run still never hands out a pair
	// twice. `make test` shares one cache between the test packages.
	if os.Getenv(emukeys.EnvVar) == "" {
		os.Setenv(emukeys.EnvVar, filepath.Join(dir, "emulator-keys"))
	}
	if err := prebuilt(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range []string{"kmsbridge", "kms-emulator"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err == nil {
			continue // prebuilt
		}
		// Built in the main module (test/ is a module of its own).
		args := []string{"build", "-o", filepath.Join(dir, b)}
		// KMSBRIDGE_E2E_RACE_CLI=1 builds the CLI with the race detector,
		// so that a data race in it (exit status 66) fails the test that
		// ran it; it is opt-in because it slows the whole suite.
		if os.Getenv("KMSBRIDGE_E2E_RACE_CLI") == "1" && b == "kmsbridge" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, "./cmd/"+b)...)
		cmd.Dir = "../.."
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	writeCPUReport()
	os.RemoveAll(dir)
	os.Exit(code)
}

// emulator is a running kms-emulator process.
type emulator struct {
	URL       string
	Artifacts string
	KMS       *kms.Client
}

// startEmulator runs the kms-emulator binary on 127.0.0.1 with extra flags,
// stopped when the test ends.
func startEmulator(t *testing.T, args ...string) *emulator {
	t.Helper()
	arts := t.TempDir()
	cmd := exec.Command(filepath.Join(binDir, "kms-emulator"), append([]string{"--listen", "127.0.0.1:0", "--artifacts-dir", arts, "--test-operations"}, args...)...)
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
		chargeCPU(t, "kms-emulator", cmd.ProcessState)
		if t.Failed() {
			t.Logf("kms-emulator log:\n%s", logs.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("kms-emulator printed no first line: %v\n%s", err, logs.String())
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("kms-emulator first line %q, want 'listening on http://127.0.0.1:PORT'", line)
	}
	go io.Copy(io.Discard, stdout)
	return &emulator{URL: url, Artifacts: arts, KMS: kmsClient(url)}
}

// kmsClient is the real SDK client pointed at url with dummy credentials.
func kmsClient(url string) *kms.Client {
	return kms.New(kms.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(url),
	})
}

// raw calls an emulator-only operation and decodes its JSON answer.
func (e *emulator) raw(t *testing.T, op string, in, out any) {
	t.Helper()
	e.rawRegion(t, "", op, in, out)
}

// rawRegion is raw for one Region: the emulator takes the Region from the
// SigV4 credential scope, whose signature it does not check. An empty
// region is the emulator's default.
func (e *emulator) rawRegion(t *testing.T, region, op string, in, out any) {
	t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if region != "" {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/"+region+"/kms/aws4_request, SignedHeaders=host, Signature=0")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d: %s", op, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v: %s", op, err, b)
	}
}

// checkValue is the emulator's key check value of the key's material.
func (e *emulator) checkValue(t *testing.T, keyID string) string {
	var out struct{ KeyCheckValue string }
	e.raw(t, "KmsBridgeGetKeyCheckValue", map[string]string{"KeyId": keyID}, &out)
	return out.KeyCheckValue
}

func (e *emulator) advance(t *testing.T, d time.Duration) {
	var out struct{ Now float64 }
	e.raw(t, "KmsBridgeAdvanceClock", map[string]any{"Seconds": d.Seconds()}, &out)
}

// keyCount is how many KMS keys exist, to prove a failed run created none.
func (e *emulator) keyCount(t *testing.T) int {
	t.Helper()
	out, err := e.KMS.ListKeys(context.Background(), &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Keys)
}

// artifact is one ImportKeyMaterial call as the emulator saw it.
type artifact struct {
	KeyId                 string
	WrappingAlgorithm     string
	WrappingKeySpec       string
	EncryptedKeyMaterial  []byte
	WrappingPrivateKeyPEM string
	Outcome               string
}

// lastArtifact returns the newest ImportKeyMaterial the emulator recorded.
func (e *emulator) lastArtifact(t *testing.T) artifact {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.Artifacts, "import-*.json"))
	if len(files) == 0 {
		t.Fatal("the emulator recorded no ImportKeyMaterial call")
	}
	b, err := os.ReadFile(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	var a artifact
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// artifactOf is the emulator's record of the last ImportKeyMaterial call
// into KMS key keyID (an id or ARN), for tests whose cells share one
// emulator and import at the same time (the last file may be another
// cell's, or still being written).
func (e *emulator) artifactOf(t *testing.T, keyID string) artifact {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.Artifacts, "import-*.json"))
	for i := len(files) - 1; i >= 0; i-- {
		b, err := os.ReadFile(files[i])
		if err != nil {
			continue
		}
		var a artifact
		if json.Unmarshal(b, &a) == nil && strings.HasSuffix(a.KeyId, keyID) {
			return a
		}
	}
	t.Fatalf("the emulator recorded no ImportKeyMaterial call into KMS key %s (%d calls recorded)", keyID, len(files))
	return artifact{}
}

// newToken provisions a fresh SoftHSM2 token for one test.
func newToken(t *testing.T) *softhsm.Token {
	return softhsm.NewTestToken(t, "ceremony")
}

// run is one kmsbridge invocation's outcome.
type run struct {
	Code           int
	Stdout, Stderr string
	// Took is the run's wall time, for timeouts scaled to the machine's
	// load (hangKMSTimeout).
	Took time.Duration
}

// kmsbridge runs the binary against a SoftHSM2 token (or none) with a
// clean environment; leading "K=V" arguments are added to it.
func kmsbridge(t *testing.T, tok *softhsm.Token, args ...string) run {
	t.Helper()
	env := []string{"KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule, "KMSBRIDGE_PIN=" + softhsm.TestPIN}
	if tok != nil {
		env = append(env, tok.Environ())
	}
	return runBinary(t, env, args...)
}

// runBinary runs kmsbridge with env on top of a clean environment: PATH,
// a fresh HOME, dummy AWS credentials. Leading "K=V" arguments are added
// to the environment too.
func runBinary(t *testing.T, env []string, args ...string) run {
	t.Helper()
	env = cleanEnv(t, env)
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") && strings.Contains(args[0], "=") {
		env = append(env, args[0])
		args = args[1:]
	}
	return runCmd(t, env, filepath.Join(binDir, "kmsbridge"), args...)
}

// kmsbridgeShell runs a command line kmsbridge printed for the operator,
// with bash, kmsbridge on PATH and the token's environment, as an
// operator pasting it would.
func kmsbridgeShell(t *testing.T, tok *softhsm.Token, line string, extraEnv ...string) run {
	t.Helper()
	env := []string{"KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule, "KMSBRIDGE_PIN=" + softhsm.TestPIN}
	if tok != nil {
		env = append(env, tok.Environ())
	}
	env = append(append(cleanEnv(t, env), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH")), extraEnv...)
	return runCmd(t, env, "bash", "-c", line)
}

// cleanEnv is env on top of PATH, a fresh HOME and dummy AWS credentials.
func cleanEnv(t *testing.T, env []string) []string {
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"AWS_ACCESS_KEY_ID=AKIDTEST",
		"AWS_SECRET_ACCESS_KEY=secret",
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}, env...)
}

func runCmd(t *testing.T, env []string, name string, args ...string) run {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	chargeCPU(t, command(name, args), cmd.ProcessState)
	r := run{Stdout: stdout.String(), Stderr: stderr.String(), Took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// importJSON runs an import that must succeed and returns its result.
func importJSON(t *testing.T, tok *softhsm.Token, args ...string) awskms.Result {
	t.Helper()
	r := kmsbridge(t, tok, append([]string{"import", "--output", "json"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("kmsbridge import %v: exit %d\nstderr:\n%s\nstdout:\n%s", args, r.Code, r.Stderr, r.Stdout)
	}
	var res awskms.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("import --output json printed no JSON result: %v\n%s", err, r.Stdout)
	}
	return res
}

// openInProcess opens the SoftHSM2 token in this process, logged in, to
// look at what a run left in the HSM.
func openInProcess(t *testing.T, tok *softhsm.Token) *hsm.Token {
	t.Helper()
	t.Setenv(softhsm.ConfEnv, tok.Conf)
	m, err := hsm.LoadModule(hsm.ModuleConfig{Path: tok.Module})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	tk, err := m.OpenToken(hsm.TokenSelector{Label: tok.Label})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Close() })
	if err := tk.Login(tok.PIN); err != nil {
		t.Fatal(err)
	}
	return tk
}

// useTokenInProcess points this process's SoftHSM2 at tok until the
// returned function is called, taking turns with parallel tests and with
// token provisioning (softhsm.Token.InProcess); it is for tests that must
// load the module in-process.
func useTokenInProcess(tok *softhsm.Token) (done func()) { return tok.InProcess() }

// tokenHasLabel reports whether an object with label exists in the token,
// to prove what a failed run left in the HSM.
func tokenHasLabel(t *testing.T, tok *softhsm.Token, label string) bool {
	t.Helper()
	return inspect(t, tok, "label-in-use", label)
}

// tokenKeyIsGuarded reports whether the secret key labelled label has
// CKA_WRAP_WITH_TRUSTED=true.
func tokenKeyIsGuarded(t *testing.T, tok *softhsm.Token, label string) bool {
	t.Helper()
	return inspect(t, tok, "guarded", label)
}

// inspect answers a question about tok in this process, with the token
// opened through inToken, which takes turns with parallel tests and with
// token provisioning (SoftHSM2 reads its configuration from the process
// environment when it is loaded). A child copy of the test binary per
// question, as before, cost about 0.1 CPU-s each, a hundred times the
// question itself.
func inspect(t *testing.T, tok *softhsm.Token, question, label string) bool {
	t.Helper()
	var answer bool
	inToken(t, tok, func(tk *hsm.Token) {
		var err error
		switch question {
		case "label-in-use":
			answer, err = tk.LabelInUse(label)
		case "guarded":
			var k *hsm.Key
			if k, err = tk.FindSecretKey(hsm.KeySelector{Label: label}); err == nil {
				answer = k.WrapWithTrusted
			}
		default:
			err = fmt.Errorf("unknown question %q", question)
		}
		if err != nil {
			t.Fatalf("asking token %q %s %q: %v", tok.Label, question, label, err)
		}
	})
	return answer
}
