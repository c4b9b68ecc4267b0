package kmsemu

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestAWSCLI drives the emulator with the aws CLI, a second, independent
// client implementation (botocore), so that wire details the Go SDK happens
// to tolerate still have to be right.
func TestAWSCLI(t *testing.T) {
	t.Parallel()
	awsPath, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("the aws CLI is not on PATH; skipping the aws CLI interoperability test")
	}
	dir := t.TempDir()
	// cliFor is the aws CLI (and a run that must succeed and print JSON)
	// pointed at the emulator at url.
	cliFor := func(url string) (func(t *testing.T, args ...string) ([]byte, error), func(t *testing.T, out any, args ...string)) {
		cli := func(t *testing.T, args ...string) ([]byte, error) {
			t.Helper()
			cmd := exec.Command(awsPath, append([]string{"kms", "--endpoint-url", url, "--output", "json"}, args...)...)
			cmd.Env = append(envWithoutAWS(),
				"AWS_ACCESS_KEY_ID=dummy", "AWS_SECRET_ACCESS_KEY=dummy", "AWS_DEFAULT_REGION=us-east-1",
				"AWS_CONFIG_FILE="+filepath.Join(dir, "no-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "no-credentials"),
				"AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1", "AWS_RETRY_MODE=standard")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				return nil, &cliError{err: err, stderr: stderr.String()}
			}
			return out, nil
		}
		run := func(t *testing.T, out any, args ...string) {
			t.Helper()
			b, err := cli(t, args...)
			if err != nil {
				t.Fatalf("aws kms %s: %v", strings.Join(args, " "), err)
			}
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("aws kms %s printed %s: %v", args[0], b, err)
			}
		}
		return cli, run
	}
	// Each part has an emulator of its own and runs beside the others: the
	// CLI's start-up (Python) is most of this test's time.
	t.Run("import, rotate and describe", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, Options{})
		cli, run := cliFor(e.url)

		var created struct {
			KeyMetadata struct {
				KeyId, Arn, KeyState, Origin, KeySpec, Description string
				Enabled                                            bool
				// The CLI prints timestamps as KMS sent them (its default
				// cli_timestamp_format is "none"): epoch seconds.
				CreationDate float64
			}
		}
		run(t, &created, "create-key", "--origin", "EXTERNAL", "--description", "aws cli test")
		md := created.KeyMetadata
		if md.KeyState != "PendingImport" || md.Enabled || md.Origin != "EXTERNAL" || md.KeySpec != "SYMMETRIC_DEFAULT" || md.Description != "aws cli test" {
			t.Fatalf("create-key printed %+v", md)
		}
		if md.CreationDate != float64(testBase.Unix()) {
			t.Errorf("CreationDate %v, want %v", md.CreationDate, testBase.Unix())
		}

		var described struct {
			KeyMetadata struct{ KeyId, Arn, KeyState string }
		}
		run(t, &described, "describe-key", "--key-id", md.Arn)
		if described.KeyMetadata.KeyId != md.KeyId || described.KeyMetadata.KeyState != "PendingImport" {
			t.Errorf("describe-key printed %+v", described.KeyMetadata)
		}

		var listed struct {
			Keys []struct{ KeyId, KeyArn string }
		}
		run(t, &listed, "list-keys")
		if len(listed.Keys) != 1 || listed.Keys[0].KeyId != md.KeyId || listed.Keys[0].KeyArn != md.Arn {
			t.Errorf("list-keys printed %+v", listed.Keys)
		}

		var params struct {
			KeyId, ImportToken, PublicKey string
			ParametersValidTo             float64
		}
		run(t, &params, "get-parameters-for-import", "--key-id", md.KeyId,
			"--wrapping-algorithm", "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048")
		der, err := base64.StdEncoding.DecodeString(params.PublicKey)
		if err != nil {
			t.Fatalf("PublicKey is not base64: %v", err)
		}
		if _, err := x509.ParsePKIXPublicKey(der); err != nil {
			t.Fatalf("PublicKey is not a SubjectPublicKeyInfo: %v", err)
		}
		if want := testBase.Add(24 * time.Hour).Unix(); params.ParametersValidTo != float64(want) {
			t.Errorf("ParametersValidTo %v, want %v", params.ParametersValidTo, want)
		}
		if params.KeyId != md.Arn {
			t.Errorf("KeyId %s, want %s", params.KeyId, md.Arn)
		}

		// Import through the CLI too: fileb:// blobs and a timestamp argument.
		token, err := base64.StdEncoding.DecodeString(params.ImportToken)
		if err != nil {
			t.Fatal(err)
		}
		material := randBytes(t, 32)
		tokenFile, blobFile := filepath.Join(dir, "token.bin"), filepath.Join(dir, "material.bin")
		if err := os.WriteFile(tokenFile, token, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blobFile, wrap(t, der, types.AlgorithmSpecRsaesOaepSha256, material), 0o600); err != nil {
			t.Fatal(err)
		}
		var imported struct{ KeyId, KeyMaterialId string }
		run(t, &imported, "import-key-material", "--key-id", md.KeyId,
			"--import-token", "fileb://"+tokenFile, "--encrypted-key-material", "fileb://"+blobFile,
			"--expiration-model", "KEY_MATERIAL_EXPIRES", "--valid-to", testBase.Add(48*time.Hour).Format(time.RFC3339))
		if imported.KeyId != md.Arn || !hex64.MatchString(imported.KeyMaterialId) {
			t.Errorf("import-key-material printed %+v", imported)
		}
		if got := e.kcv(t, md.KeyId).KeyCheckValue; got != keyCheckValue(material) {
			t.Errorf("imported material has KCV %s, want %s", got, keyCheckValue(material))
		}
		if vt := e.describe(t, md.KeyId).ValidTo; vt == nil || !vt.Equal(testBase.Add(48*time.Hour)) {
			t.Errorf("ValidTo = %v, want %v", vt, testBase.Add(48*time.Hour))
		}

		// On-demand rotation of imported material through the CLI: NEW import
		// with a description, rotate-key-on-demand, list-key-rotations.
		run(t, &params, "get-parameters-for-import", "--key-id", md.KeyId,
			"--wrapping-algorithm", "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048")
		if der, err = base64.StdEncoding.DecodeString(params.PublicKey); err != nil {
			t.Fatal(err)
		}
		if token, err = base64.StdEncoding.DecodeString(params.ImportToken); err != nil {
			t.Fatal(err)
		}
		material2 := randBytes(t, 32)
		if err := os.WriteFile(tokenFile, token, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(blobFile, wrap(t, der, types.AlgorithmSpecRsaesOaepSha256, material2), 0o600); err != nil {
			t.Fatal(err)
		}
		var imported2 struct{ KeyId, KeyMaterialId string }
		run(t, &imported2, "import-key-material", "--key-id", md.KeyId,
			"--import-token", "fileb://"+tokenFile, "--encrypted-key-material", "fileb://"+blobFile,
			"--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE", "--import-type", "NEW_KEY_MATERIAL",
			"--key-material-description", "generation 2")
		if imported2.KeyMaterialId == imported.KeyMaterialId || !hex64.MatchString(imported2.KeyMaterialId) {
			t.Fatalf("NEW import printed %+v", imported2)
		}
		var rotated struct{ KeyId string }
		run(t, &rotated, "rotate-key-on-demand", "--key-id", md.KeyId)
		if rotated.KeyId != md.Arn {
			t.Errorf("rotate-key-on-demand printed %+v", rotated)
		}
		e.advance(t, defaultRotationDelay)
		var rotations struct {
			Rotations []struct {
				KeyMaterialId, KeyMaterialState, ImportState, ExpirationModel, KeyMaterialDescription, RotationType string
				RotationDate                                                                                        float64
			}
			Truncated bool
		}
		run(t, &rotations, "list-key-rotations", "--key-id", md.KeyId, "--include-key-material", "ALL_KEY_MATERIAL")
		if r := rotations.Rotations; len(r) != 2 || r[0].KeyMaterialId != imported.KeyMaterialId || r[0].KeyMaterialState != "NON_CURRENT" ||
			r[1].KeyMaterialId != imported2.KeyMaterialId || r[1].KeyMaterialState != "CURRENT" || r[1].ImportState != "IMPORTED" ||
			r[1].ExpirationModel != "KEY_MATERIAL_DOES_NOT_EXPIRE" || r[1].KeyMaterialDescription != "generation 2" ||
			r[1].RotationType != "ON_DEMAND" || r[1].RotationDate != float64(e.now().Unix()) {
			t.Errorf("list-key-rotations printed %+v", r)
		}
		_, err = cli(t, "rotate-key-on-demand", "--key-id", md.KeyId)
		if err == nil || !strings.Contains(err.Error(), "KMSInvalidStateException") || !strings.Contains(err.Error(), "No available key material pending rotation") {
			t.Errorf("rotate-key-on-demand with nothing pending: %v", err)
		}
	})

	// Multi-Region keys across Regions of one emulator, through the CLI's
	// --region (so its SigV4 credential scope).
	t.Run("multi-Region keys", func(t *testing.T) {
		t.Parallel()
		_, run := cliFor(newEnv(t, Options{}).url)
		var mrk struct{ KeyMetadata struct{ KeyId, Arn string } }
		run(t, &mrk, "create-key", "--multi-region", "--origin", "EXTERNAL")
		var replica struct {
			ReplicaKeyMetadata struct{ Arn, KeyState string }
		}
		run(t, &replica, "replicate-key", "--key-id", mrk.KeyMetadata.KeyId, "--replica-region", "eu-west-1")
		if replica.ReplicaKeyMetadata.Arn != "arn:aws:kms:eu-west-1:111122223333:key/"+mrk.KeyMetadata.KeyId || replica.ReplicaKeyMetadata.KeyState != "PendingImport" {
			t.Errorf("replicate-key printed %+v", replica.ReplicaKeyMetadata)
		}
		var inEU struct {
			KeyMetadata struct {
				MultiRegionConfiguration struct {
					MultiRegionKeyType string
					PrimaryKey         struct{ Region string }
				}
			}
		}
		run(t, &inEU, "--region", "eu-west-1", "describe-key", "--key-id", mrk.KeyMetadata.KeyId)
		if c := inEU.KeyMetadata.MultiRegionConfiguration; c.MultiRegionKeyType != "REPLICA" || c.PrimaryKey.Region != "us-east-1" {
			t.Errorf("describe-key in eu-west-1 printed %+v", c)
		}
	})

	t.Run("unknown alias", func(t *testing.T) {
		t.Parallel()
		cli, _ := cliFor(newEnv(t, Options{}).url)
		_, err := cli(t, "describe-key", "--key-id", "alias/does-not-exist")
		if err == nil || !strings.Contains(err.Error(), "NotFoundException") {
			t.Errorf("describe-key of an unknown alias: %v, want a NotFoundException", err)
		}
	})
}

// envWithoutAWS is the test's environment minus every AWS_ variable, so a
// developer's profile or credentials cannot leak into the CLI run.
func envWithoutAWS() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	return env
}

type cliError struct {
	err    error
	stderr string
}

func (e *cliError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
