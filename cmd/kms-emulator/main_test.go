package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// binary is the kms-emulator built once for these tests: they run it as a
// user or a test harness would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kms-emulator-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "kms-emulator")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
	}
	build := exec.Command(goTool, "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kms-emulator:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cleanEnv is the test's environment without KMS_EMULATOR_ variables, so
// only the flags under test configure the emulator.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KMS_EMULATOR_") {
			env = append(env, kv)
		}
	}
	return env
}

// fileLog is a child's stderr, written straight to a file by the child
// itself (no copying goroutine), so whatever the child wrote to stderr
// before a line on stdout is in the file by the time the test reads that line.
type fileLog struct{ path string }

func (f *fileLog) String() string {
	b, _ := os.ReadFile(f.path)
	return string(b)
}

type running struct {
	cmd    *exec.Cmd
	url    string
	stdout *bufio.Reader
	stderr *fileLog
}

// start runs the emulator and reads its first stdout line.
func start(t *testing.T, args ...string) *running {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with extra NAME=VALUE environment variables.
func startEnv(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(cleanEnv(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errFile, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	r := &running{cmd: cmd, stdout: bufio.NewReader(out), stderr: &fileLog{errFile.Name()}}
	cmd.Stderr = errFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := r.stdout.ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		m := regexp.MustCompile(`^listening on (http://127\.0\.0\.1:[0-9]+)\n$`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("first stdout line = %q, want \"listening on http://127.0.0.1:PORT\"; stderr: %s", l, r.stderr)
		}
		r.url = m[1]
	case <-time.After(20 * time.Second):
		t.Fatalf("no listening line after 20s; stderr: %s", r.stderr)
	}
	return r
}

// stop sends sig and returns the exit code.
func (r *running) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after %v", sig)
		return -1
	}
}

func client(url string) *kms.Client { return clientIn(url, "us-east-1") }

// clientIn is client signing for region: the emulator serves each request
// in the Region of its signature.
func clientIn(url, region string) *kms.Client {
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(url) })
}

func TestServesUntilSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run("ok "+sig.String(), func(t *testing.T) {
			r := start(t, "--region", "eu-central-1", "--account-id", "210987654321")
			c := clientIn(r.url, "eu-central-1")
			ctx := context.Background()
			created, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			arn := aws.ToString(created.KeyMetadata.Arn)
			if !strings.HasPrefix(arn, "arn:aws:kms:eu-central-1:210987654321:key/") {
				t.Errorf("Arn = %s, want the --region and --account-id", arn)
			}
			secret := []byte("do-not-log-this-plaintext")
			enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: created.KeyMetadata.KeyId, Plaintext: secret})
			if err != nil {
				t.Fatalf("Encrypt: %v", err)
			}
			if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/missing")})
			var nf *types.NotFoundException
			if !errors.As(err, &nf) {
				t.Errorf("DescribeKey of a missing alias = %v", err)
			}

			if code := r.stop(t, sig); code != 0 {
				t.Errorf("exit code %d after %v, want 0; stderr: %s", code, sig, r.stderr)
			}
			logs := r.stderr.String()
			keyID := aws.ToString(created.KeyMetadata.KeyId)
			for _, want := range []string{
				"op=CreateKey key=" + keyID + " outcome=ok",
				"op=Encrypt key=" + keyID + " outcome=ok",
				"op=DescribeKey key=alias/missing outcome=NotFoundException",
			} {
				if !strings.Contains(logs, want) {
					t.Errorf("stderr lacks %q:\n%s", want, logs)
				}
			}
			for _, leak := range []string{string(secret), base64.StdEncoding.EncodeToString(secret)} {
				if strings.Contains(logs, leak) {
					t.Errorf("stderr contains the plaintext")
				}
			}
			if rest, _ := io.ReadAll(r.stdout); len(rest) != 0 {
				t.Errorf("stdout after the listening line: %q", rest)
			}
		})
	}
}

func TestArtifactsDirFlag(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "artifacts")
	r := start(t, "--artifacts-dir", dir)
	c := client(r.url)
	ctx := context.Background()
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: created.KeyMetadata.KeyId, ImportToken: []byte("forged"), EncryptedKeyMaterial: []byte("x"),
		ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	var it *types.InvalidImportTokenException
	if !errors.As(err, &it) {
		t.Fatalf("ImportKeyMaterial with a forged token = %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "import-001.json"))
	if err != nil {
		t.Fatalf("artifact: %v", err)
	}
	if !strings.Contains(string(data), `"Outcome": "InvalidImportTokenException"`) {
		t.Errorf("import-001.json = %s", data)
	}
	r.stop(t, syscall.SIGTERM)
}

// runFails runs the binary with args and returns its exit code and output.
func runFails(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("kms-emulator %v is still running after 15s; it should have refused to start", args)
		return 0, "", ""
	}
}

func TestRefusesBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"fail all interfaces", []string{"--listen", "0.0.0.0:0"}, "non-loopback"},
		{"fail empty host (all interfaces)", []string{"--listen", ":4599"}, "non-loopback"},
		{"fail IPv6 any", []string{"--listen", "[::]:0"}, "non-loopback"},
		{"fail LAN address", []string{"--listen", "192.168.1.10:4599"}, "non-loopback"},
		{"fail host name", []string{"--listen", "example.com:4599"}, "non-loopback"},
		{"fail no port", []string{"--listen", "127.0.0.1"}, "HOST:PORT"},
		{"fail zero TTL", []string{"--import-parameters-ttl", "0s"}, "positive"},
		{"fail zero rotation delay", []string{"--rotation-delay", "0s"}, "positive"},
		{"fail quota without a rate", []string{"--quota", "CreateKey"}, "OP=RPS"},
		{"fail quota of an unknown operation", []string{"--quota", "MakeCoffee=1"}, "MakeCoffee"},
		{"fail quota of zero", []string{"--quota", "CreateKey=0"}, "> 0"},
		{"fail empty wrapping key pool", []string{"--wrapping-key-pool", "0"}, "1 to 10000"},
		{"fail wrapping key pool of an unknown spec", []string{"--wrapping-key-pool", "RSA_1024=2"}, "RSA_1024"},
		{"fail negative latency", []string{"--latency", "-1s"}, "negative"},
		{"fail short account id", []string{"--account-id", "1234"}, "12 digits"},
		{"fail bad region", []string{"--region", "Mars"}, "region"},
		{"fail region in upper case", []string{"--region", "US-EAST-1"}, "lower case: write us-east-1"},
		{"fail region AWS does not have", []string{"--region", "eu-west-9"}, "did you mean eu-west-1"},
		{"fail artifacts dir is a file", []string{"--artifacts-dir", "/etc/hostname"}, "--artifacts-dir /etc/hostname: is a regular file, not a directory"},
		{"fail artifacts dir others may write", []string{"--artifacts-dir", "/tmp"}, "shared with other users"},
		{"fail unknown flag", []string{"--port", "4599"}, "--help"},
		{"fail stray argument", []string{"serve"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runFails(t, tt.args...)
			if code != exitInvalidInput {
				t.Errorf("exit code %d, want %d", code, exitInvalidInput)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing (no listening line)", stdout)
			}
			if !strings.Contains(stderr, tt.msg) {
				t.Errorf("stderr %q does not mention %q", stderr, tt.msg)
			}
		})
	}
}

func TestHelpShowsAWSCLIExample(t *testing.T) {
	code, stdout, _ := runFails(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit code %d", code)
	}
	for _, want := range []string{"aws kms create-key --origin EXTERNAL --endpoint-url", "--listen", "--artifacts-dir", "listening on http://",
		"--lenient-pkcs8-padding", "KMS_EMULATOR_LENIENT_PKCS8_PADDING", "SoftHSM2 2.6.1", "ECC_SECG_P256K1", "GenerateMac",
		"--test-operations", "KMS_EMULATOR_TEST_OPERATIONS", "KmsBridgeInjectFault", "LostResponse", "KmsBridgeListFaults", "KmsBridgeClearFaults",
		"--rotation-delay", "NEW_KEY_MATERIAL", "RotateKeyOnDemand",
		"--latency", "--latency-jitter", "--quota", "aws-defaults", "--wrapping-key-pool", "a window sliding with each request",
		"--test-key-cache", "KMSBRIDGE_EMULATOR_KEY_CACHE"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// postOp sends one awsJson1.1 request without the SDK and returns the status
// and X-Amzn-ErrorType.
func postOp(t *testing.T, url, op, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType")
}

func TestTestOperationsFlag(t *testing.T) {
	t.Run("ok off by default", func(t *testing.T) {
		r := start(t)
		for _, op := range []string{"KmsBridgeAdvanceClock", "KmsBridgeInjectFault", "KmsBridgeListFaults"} {
			if status, code := postOp(t, r.url, op, `{}`); status != 400 || code != "UnknownOperationException" {
				t.Errorf("%s without --test-operations: HTTP %d %s, want 400 UnknownOperationException", op, status, code)
			}
		}
	})
	for _, tt := range []struct {
		name string
		env  []string
		args []string
	}{
		{"ok on with the flag", nil, []string{"--test-operations"}},
		{"ok on with the environment variable", []string{"KMS_EMULATOR_TEST_OPERATIONS=true"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := startEnv(t, tt.env, tt.args...)
			if status, code := postOp(t, r.url, "KmsBridgeInjectFault", `{"Operation":"CreateKey","Fault":"Throttling"}`); status != 200 {
				t.Fatalf("KmsBridgeInjectFault: HTTP %d %s", status, code)
			}
			_, err := client(r.url).CreateKey(context.Background(), &kms.CreateKeyInput{})
			var te interface{ ErrorCode() string }
			if !errors.As(err, &te) || te.ErrorCode() != "ThrottlingException" {
				t.Errorf("CreateKey after an injected Throttling = %v", err)
			}
		})
	}
}

func TestScaleFlags(t *testing.T) {
	r := start(t, "--quota", "aws-defaults", "--quota", "CreateKey=0.001", "--wrapping-key-pool", "RSA_2048=2", "--latency", "1ms", "--latency-jitter", "1ms")
	if !strings.Contains(r.stderr.String(), "wrapping key pools ready") {
		t.Errorf("the listening line came before the pools were ready:\n%s", r.stderr)
	}
	c := client(r.url)
	if _, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{}); err != nil {
		t.Fatalf("first CreateKey: %v", err)
	}
	_, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{})
	var te interface{ ErrorCode() string }
	if !errors.As(err, &te) || te.ErrorCode() != "ThrottlingException" {
		t.Errorf("second CreateKey under --quota CreateKey=0.001 = %v, want ThrottlingException", err)
	}
}
