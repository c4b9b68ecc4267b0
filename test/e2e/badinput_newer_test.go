package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/kmsbridge/kmsbridge/journal"
)

// TestCatalogueNewerCommands is the catalogue of bad inputs to what came
// after the first catalogue: status, renew, rotate, multi-Region keys,
// import --from and --parallel, PKCS#11 URIs, record repair, the state
// directory and its journals, and the flag values every command checks
// before its first change (durations, counts, parallelism, rate-table
// operation names, Region names). Each is refused with its exit code and a
// message naming the problem and the next step, and changes nothing: no
// KMS key or alias in any Region, no token object, no file (the state
// directories and the files their symlinks point to are the catalogue's).
func TestCatalogueNewerCommands(t *testing.T) {
	t.Parallel()
	c := newCatalogue(t)
	u, err := url.Parse(c.emu.URL)
	if err != nil {
		t.Fatal(err)
	}
	journalName := journal.Scope{TokenSerial: c.tok.Serial, Target: "us-east-1@" + u.Host}.FileName()

	// A KMS key pending deletion, for delete-material.
	ctx := context.Background()
	ext, err := c.emu.KMS.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	doomed := aws.ToString(ext.KeyMetadata.KeyId)
	if _, err := c.emu.KMS.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(doomed), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}

	// State directories: each a case of its own.
	mkdir := func(name string, mode os.FileMode) string {
		p := c.path(name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	okState := mkdir("state-ok", 0o700)
	groupState := mkdir("state-group", 0o770)
	worldState := mkdir("state-world", 0o707)
	linkState := c.path("state-link")
	if err := os.Symlink(okState, linkState); err != nil {
		t.Fatal(err)
	}
	// A journal that is a symlink to someone's file, which ends without a
	// newline: the torn-line cut used to truncate it.
	victim := c.file(t, "victim.txt", "someone else's file\nwith no newline at its end", 0o600)
	linkedJournal := mkdir("state-linked-journal", 0o700)
	if err := os.Symlink(victim, filepath.Join(linkedJournal, journalName)); err != nil {
		t.Fatal(err)
	}
	fifoJournal := mkdir("state-fifo-journal", 0o700)
	if err := syscall.Mkfifo(filepath.Join(fifoJournal, journalName), 0o600); err != nil {
		t.Fatal(err)
	}
	zeroCompacting := mkdir("state-zero-compacting", 0o700)
	c.file(t, "state-zero-compacting/"+journalName, "", 0o600)
	if err := os.Symlink("/dev/zero", filepath.Join(zeroCompacting, journalName+".compacting")); err != nil {
		t.Fatal(err)
	}
	linkedArchive := mkdir("state-linked-archive", 0o700)
	c.file(t, "state-linked-archive/"+journalName, "", 0o600)
	if err := os.Symlink(victim, filepath.Join(linkedArchive, journalName+".archive")); err != nil {
		t.Fatal(err)
	}
	stateFile := c.file(t, "state-is-a-file", "", 0o600)

	// Key lists for import --from.
	const header = "hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry,multi-region,replica-regions\n"
	row := func(label, multi, replicas string) string {
		return fmt.Sprintf("%s,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/%s,RSAES_OAEP_SHA_1,RSA_2048,true,%s,%s\n", label, label, multi, replicas)
	}
	goodList := c.file(t, "keys.csv", header+row("bulk-1", "false", ""), 0o600)
	quoteList := c.file(t, "quote.csv", header+row("bulk-1", "false", "")+"\"bulk-2,true\n", 0o600)
	shortList := c.file(t, "short.csv", header+"bulk-1,true\n", 0o600)
	homeReplicaList := c.file(t, "home-replica.csv", header+row("bulk-mr", "true", "us-east-1"), 0o600)
	bogusReplicaList := c.file(t, "bogus-replica.csv", header+row("bulk-mr", "true", "us-wset-2"), 0o600)
	caseReplicaList := c.file(t, "case-replica.csv", header+row("bulk-mr", "true", "US-WEST-2"), 0o600)
	badBoolList := c.file(t, "bad-bool.csv", header+row("bulk-mr", "maybe", "us-west-2"), 0o600)
	if err := syscall.Mkfifo(c.path("fifo.csv"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", c.path("zero.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(goodList, c.path("link.csv")); err != nil {
		t.Fatal(err)
	}

	// A ceremony file whose run would write its record.
	cerRecord := c.path("ceremony-par-record.jsonl")
	ceremonyFile := c.file(t, "par.yaml", fmt.Sprintf("hsm:\n  module: %s\n  token:\n    label: %s\n  pin-source:\n    env: KMSBRIDGE_PIN\n"+
		"kms:\n  region: us-east-1\n  endpoint: %s\n  allow-endpoint: %s\nrecord: %s\noperators:\n  - Alice (custodian)\ndual-control:\n  wrap-with-trusted: false\nkeys:\n"+
		"  - hsm-label: par-data\n    generate: true\n    key-spec: SYMMETRIC_DEFAULT\n    key-usage: ENCRYPT_DECRYPT\n    alias: alias/par-data\n"+
		"    wrapping-algorithm: RSAES_OAEP_SHA_1\n    wrapping-key-spec: RSA_2048\n    no-expiry: true\n", c.tok.Module, c.tok.Label, c.emu.URL, c.emu.URL, cerRecord), 0o600)

	// A torn record behind a symlink, for record repair.
	if err := os.Symlink(victim, c.path("record-link.jsonl")); err != nil {
		t.Fatal(err)
	}

	tok := []string{"--token-label", c.tok.Label, "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL}
	imp := func(extra ...string) []string {
		return append(append([]string{"import"}, tok...), append([]string{"--wrapping-key-spec", "RSA_2048"}, extra...)...)
	}
	gen := func(extra ...string) []string {
		return imp(append([]string{"--key-label", "new", "--generate", "--no-expiry"}, extra...)...)
	}
	from := func(list string, extra ...string) []string {
		return append(append([]string{"import"}, tok...), append([]string{"--from", list}, extra...)...)
	}
	status := func(extra ...string) []string {
		return append([]string{"status", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL}, extra...)
	}
	renew := func(extra ...string) []string {
		return append(append([]string{"renew"}, tok...), extra...)
	}
	rotate := func(extra ...string) []string {
		return append(append([]string{"rotate"}, tok...), append([]string{"--kms-key-id", c.existing.KeyId, "--no-expiry"}, extra...)...)
	}
	repair := func(args ...string) []string { return append([]string{"record", "repair"}, args...) }
	env := func(kv string, args []string) []string { return append([]string{kv}, args...) }
	help := "--help"
	notRegion := "is not an AWS Region"

	cases := []badCase{
		// Durations, counts and parallelism: zero and negative refused first.
		{"import kms-timeout zero", gen("--kms-timeout", "0s"), 2, []string{"--kms-timeout 0s", "such as 30s"}},
		{"import kms-timeout negative", gen("--kms-timeout", "-1s"), 2, []string{"--kms-timeout -1s", "such as 30s"}},
		{"import kms-timeout not a duration", gen("--kms-timeout", "soon"), 2, []string{`invalid value "soon"`, help}},
		{"status kms-timeout zero", status("--kms-timeout", "0s"), 2, []string{"--kms-timeout 0s"}},
		{"ceremony kms-timeout zero", []string{"ceremony", "run", ceremonyFile, "--kms-timeout", "0s"}, 2, []string{"--kms-timeout 0s"}},
		{"rotate wait negative", rotate("--wait", "-1s"), 2, []string{"--wait -1s", "such as 10m"}},
		{"rotate wait zero", rotate("--wait", "0s"), 2, []string{"--wait 0s"}},
		{"rotate wait too long", rotate("--wait", "100h"), 2, []string{"--wait 100h0m0s", "24h0m0s"}},
		{"renew max-keys zero", renew("--max-keys", "0"), 2, []string{"--max-keys 0", "from 1 to"}},
		{"renew max-keys negative", renew("--max-keys", "-5"), 2, []string{"--max-keys -5"}},
		{"renew within negative", renew("--within", "-1"), 2, []string{"--within -1", "0 to 365 days"}},
		{"renew valid-for zero", renew("--valid-for", "0"), 2, []string{"--valid-for 0", "1 to 365 days"}},
		{"renew valid-for too long", renew("--valid-for", "400"), 2, []string{"--valid-for 400"}},
		{"status max-keys zero", status("--max-keys", "0"), 2, []string{"--max-keys 0"}},
		{"status warn-days negative", status("--warn-days", "-1"), 2, []string{"--warn-days -1"}},
		{"ceremony parallel zero writes no record", []string{"ceremony", "run", ceremonyFile, "--parallel", "0"}, 2, []string{"--parallel 0", "from 1 to 64"}},
		{"ceremony parallel negative", []string{"ceremony", "run", ceremonyFile, "--parallel", "-2"}, 2, []string{"--parallel -2"}},
		{"from parallel zero", from(goodList, "--parallel", "0"), 2, []string{"--parallel 0"}},
		{"from parallel too many", from(goodList, "--parallel", "1000"), 2, []string{"--parallel 1000", "from 1 to 64"}},
		{"parallel without from", gen("--parallel", "2"), 2, []string{"--parallel goes with --from FILE"}},

		// The client-side rate table.
		{"kms-rate misspelt operation", gen("--kms-rate", "GetParametersForImprot=5"), 2, []string{"sends no KMS operation", "GetParametersForImport"}},
		{"kms-rate operation in the wrong case", gen("--kms-rate", "createkey=5"), 2, []string{"case-sensitive: write CreateKey"}},
		{"kms-rate negative", gen("--kms-rate", "CreateKey=-1"), 2, []string{"--kms-rate", "0 or more"}},
		{"kms-rate no rate", renew("--kms-rate", "CreateKey"), 2, []string{"give OP=RPS"}},
		{"ceremony kms-rate misspelt", []string{"ceremony", "run", ceremonyFile, "--kms-rate", "ImportKeyMaterials=1"}, 2, []string{"sends no KMS operation"}},

		// Region names: against the partition's Regions, case included.
		{"region bogus", gen("--region", "bogus"), 2, []string{`--region "bogus" ` + notRegion}},
		{"region upper case", gen("--region", "US-EAST-1"), 2, []string{"lower case: write us-east-1"}},
		{"region of the right shape AWS lacks", gen("--region", "eu-west-9"), 2, []string{notRegion, "did you mean eu-west-1"}},
		{"region from the environment", env("AWS_REGION=us-esat-1", gen()), 2, []string{"AWS_REGION", notRegion, "us-east-1"}},
		{"multi-region replica bogus creates no primary", gen("--multi-region", "--replica-region", "bogus"), 2, []string{`--replica-region "bogus" ` + notRegion}},
		{"multi-region replica upper case", gen("--multi-region", "--replica-region", "US-WEST-2"), 2, []string{"write us-west-2"}},
		{"multi-region replica is home", gen("--multi-region", "--replica-region", "us-east-1"), 2, []string{"not the home Region us-east-1"}},
		{"multi-region replica twice", gen("--multi-region", "--replica-region", "us-west-2", "--replica-region", "us-west-2"), 2, []string{"give each Region once"}},
		{"replica without multi-region", gen("--replica-region", "us-west-2"), 2, []string{"add --multi-region"}},
		{"renew replica misspelt", renew("--replica-region", "eu-wset-1"), 2, []string{notRegion, "did you mean eu-west-1"}},
		{"rotate replica bogus", rotate("--replica-region", "mars"), 2, []string{notRegion}},
		{"status replica upper case", status("--replica-region", "EU-WEST-1"), 2, []string{"write eu-west-1"}},
		{"status region bogus", status("--region", "narnia-1"), 2, []string{notRegion}},
		{"delete-material region bogus", []string{"delete-material", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.existing.KeyId, "--yes", "--region", "eu-west-9"}, 2, []string{notRegion}},

		// import --from: the key list is input like any other file.
		{"from missing file", from(c.path("nosuch.csv")), 2, []string{"--from", "nosuch.csv", "no such file", "check the path"}},
		{"from fifo", from(c.path("fifo.csv")), 2, []string{"--from", "FIFO", "not a regular file"}},
		{"from dev zero", from(c.path("zero.csv")), 2, []string{"--from", "symbolic link to /dev/zero", "give the path of the file itself"}},
		{"from symlink", from(c.path("link.csv")), 2, []string{"--from", "symbolic link to " + goodList}},
		{"from directory", from(c.path("subdir")), 2, []string{"--from", "is a directory"}},
		{"from unbalanced quote", from(quoteList), 2, []string{"quote.csv:3:", "never closed", `""`}},
		{"from short row", from(shortList), 2, []string{"short.csv:2:", "as many fields as the header row"}},
		{"from not csv or yaml", from(c.path("plain.txt")), 2, []string{"a key list is a .csv file", "rename it or convert it"}},
		{"from replica is home", from(homeReplicaList), 2, []string{"replica-regions", "home Region", "list only the other Regions"}},
		{"from replica misspelt", from(bogusReplicaList), 2, []string{"bogus-replica.csv:2:", notRegion, "did you mean us-west-2"}},
		{"from replica upper case", from(caseReplicaList), 2, []string{"write us-west-2"}},
		{"from multi-region not a bool", from(badBoolList), 2, []string{"multi-region must be true or false"}},
		{"from with multi-region flag", from(goodList, "--multi-region"), 2, []string{"--multi-region and --from", "put multi-region in a column"}},
		{"from with replica-region flag", from(goodList, "--replica-region", "us-west-2"), 2, []string{"--replica-region and --from", "replica-regions"}},
		{"from with key-label", from(goodList, "--key-label", "x"), 2, []string{"--key-label and --from"}},
		{"from with allow-second-kms-key", from(goodList, "--allow-second-kms-key"), 2, []string{"--allow-second-kms-key does not apply to import --from"}},
		{"from with key uri", from(goodList, "--key", "pkcs11:object=x"), 2, []string{"--key does not apply to import --from"}},

		// PKCS#11 URIs.
		{"token uri pin-value", []string{"import", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--token", "pkcs11:token=" + c.tok.Label + "?pin-value=8642", "--key-label", "new", "--generate", "--no-expiry"}, 2, []string{"pin-value puts the PIN on the command line"}},
		{"token uri not a uri", []string{"import", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--token", c.tok.Label, "--key-label", "new", "--generate", "--no-expiry"}, 2, []string{"--token takes a PKCS#11 URI"}},
		{"token uri and label", gen("--token", "pkcs11:token="+c.tok.Label), 2, []string{"the token is chosen twice"}},
		{"key uri and key label", imp("--key", "pkcs11:object=existing", "--key-label", "existing", "--no-expiry"), 2, []string{"the HSM key is chosen twice"}},

		// The state directory and its journals.
		{"state dir group writable", gen("--state-dir", groupState), 2, []string{"writable by its group (mode 0770)", "chmod 700 " + groupState}},
		{"state dir world writable", gen("--state-dir", worldState), 2, []string{"writable by others", "chmod 700 " + worldState}},
		{"state dir symlink", gen("--state-dir", linkState), 2, []string{"symbolic link to " + okState, "give the directory itself"}},
		{"state dir is a file", gen("--state-dir", stateFile), 2, []string{"state-is-a-file", "not a directory"}},
		{"state dir shared tmp", gen("--state-dir", "/tmp"), 2, []string{"shared with other users", "mkdir -m 700"}},
		{"journal symlink keeps its target", gen("--state-dir", linkedJournal), 2, []string{"journal", "symbolic link to " + victim}},
		{"journal fifo", gen("--state-dir", fifoJournal), 2, []string{"journal", "FIFO"}},
		{"journal compacting dev zero", gen("--state-dir", zeroCompacting), 2, []string{".compacting", "symbolic link to /dev/zero"}},
		{"renew state dir group writable", renew("--state-dir", groupState), 2, []string{"chmod 700"}},
		{"state dir checked before the record is made", gen("--record", c.path("new-record.jsonl"), "--state-dir", worldState), 2, []string{"chmod 700"}},
		{"renew wrapping key spec", renew("--wrapping-key-spec", "RSA_1024"), 2, []string{"RSA_1024", "RSA_4096"}},
		{"rotate wrapping key spec", rotate("--wrapping-key-spec", "RSA_512"), 2, []string{"RSA_512"}},
		{"rotate journal symlink", rotate("--state-dir", linkedJournal), 2, []string{"symbolic link to " + victim}},

		// record repair.
		{"record repair no file", repair(), 2, []string{"takes one FILE"}},
		{"record repair dev zero", repair(c.path("zero")), 2, []string{"ceremony record", "symbolic link to /dev/zero"}},
		{"record repair fifo", repair(c.path("fifo")), 2, []string{"ceremony record", "FIFO"}},
		{"record repair directory", repair(c.path("subdir")), 2, []string{"ceremony record", "directory"}},
		{"record repair missing", repair(c.path("nosuch.jsonl")), 2, []string{"no such file"}},
		{"record repair symlink keeps its target", repair(c.path("record-link.jsonl")), 2, []string{"symbolic link to " + victim}},
		{"record repair not a record", repair(c.file(t, "torn-not-record.jsonl", "hello\nworld", 0o600)), 2, []string{"does not verify and nothing was changed", "kmsbridge record verify"}},

		// status, renew, rotate, delete-material.
		{"status output", status("--output", "xml"), 2, []string{`--output "xml"`, "text, json or prometheus"}},
		{"status argument", append(status(), "extra"), 2, []string{`unexpected argument "extra"`}},
		{"renew no token", []string{"renew", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL}, 2, []string{"renew wraps the material in the HSM", "--token-label"}},
		{"renew valid-for and valid-to", renew("--valid-for", "30", "--no-expiry"), 2, []string{"--valid-for and --valid-to/--no-expiry both given"}},
		{"rotate no kms key", append(append([]string{"rotate"}, tok...), "--no-expiry"), 2, []string{"--kms-key-id is required"}},
		{"rotate no token", []string{"rotate", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", c.existing.KeyId, "--no-expiry"}, 2, []string{"rotate generates the new material in the HSM"}},
		// Checked before the record gets its first entry.
		{"rotate new label with newline", rotate("--new-key-label", "k\nlevel=ERROR", "--record", c.path("rot-record.jsonl")), 2, []string{"--new-key-label", "control character"}},
		{"rotate description too long", rotate("--description", strings.Repeat("d", 8193), "--record", c.path("rot-record.jsonl")), 2, []string{"8193 characters"}},
		{"rotate alias without prefix", rotate("--alias", "payments", "--record", c.path("rot-record.jsonl")), 2, []string{"must start with alias/"}},
		{"rotate valid-to in the past", append(append([]string{"rotate"}, tok...), "--kms-key-id", c.existing.KeyId, "--valid-to", "2020-01-01", "--record", c.path("rot-record.jsonl")), 2, []string{"is in the past"}},
		{"renew valid-to in the past", renew("--valid-to", "2020-01-01", "--record", c.path("ren-record.jsonl")), 2, []string{"is in the past"}},
		{"renew key label with newline", renew("--key-label", "a\nb", "--record", c.path("ren-record.jsonl")), 2, []string{"control character"}},
		{"delete-material pending deletion", []string{"delete-material", "--endpoint-url", c.emu.URL, "--allow-endpoint", c.emu.URL, "--kms-key-id", doomed, "--yes", "--state-dir", okState}, 2,
			[]string{"is PendingDeletion: nothing was deleted", "aws kms cancel-key-deletion --key-id " + doomed}},
	}
	c.run(t, cases)
	if b, err := os.ReadFile(victim); err != nil || !bytes.HasSuffix(b, []byte("no newline at its end")) {
		t.Errorf("the file a symlinked journal or record pointed to changed: %q %v", b, err)
	}
	if _, err := os.Lstat(cerRecord); err == nil {
		t.Error("ceremony run --parallel 0 wrote its record before refusing")
	}
}

// TestCatalogueEmulatorFlags: every bad kms-emulator flag exits 2 with a
// message naming it, before the listening line.
func TestCatalogueEmulatorFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"region bogus", []string{"--region", "bogus"}, []string{`--region "bogus" is not an AWS Region`}},
		{"region upper case", []string{"--region", "US-EAST-1"}, []string{"lower case: write us-east-1"}},
		{"region AWS lacks", []string{"--region", "us-east-7"}, []string{"is not an AWS Region", "did you mean"}},
		{"env region bogus", []string{"KMS_EMULATOR_REGION=Mars"}, []string{`--region "Mars"`}},
		{"listen not loopback", []string{"--listen", "0.0.0.0:0"}, []string{"non-loopback"}},
		{"listen no port", []string{"--listen", "127.0.0.1"}, []string{"HOST:PORT"}},
		{"account id short", []string{"--account-id", "1234"}, []string{"12 digits"}},
		{"ttl zero", []string{"--import-parameters-ttl", "0s"}, []string{"positive"}},
		{"ttl negative", []string{"--import-parameters-ttl", "-1h"}, []string{"positive"}},
		{"rotation delay zero", []string{"--rotation-delay", "0s"}, []string{"positive"}},
		{"latency negative", []string{"--latency", "-1ms"}, []string{"must not be negative"}},
		{"jitter negative", []string{"--latency-jitter", "-1ms"}, []string{"must not be negative"}},
		{"quota unknown operation", []string{"--quota", "MakeCoffee=1"}, []string{"MakeCoffee"}},
		{"quota zero", []string{"--quota", "CreateKey=0"}, []string{"> 0"}},
		{"quota no rate", []string{"--quota", "CreateKey"}, []string{"OP=RPS"}},
		{"pool zero", []string{"--wrapping-key-pool", "0"}, []string{"1 to 10000"}},
		{"pool unknown spec", []string{"--wrapping-key-pool", "RSA_1024=1"}, []string{"RSA_1024"}},
		{"artifacts dir a file", []string{"--artifacts-dir", file}, []string{"--artifacts-dir", "not a directory"}},
		{"artifacts dir symlink", []string{"--artifacts-dir", link}, []string{"--artifacts-dir", "symbolic link"}},
		{"artifacts dir others may write", []string{"--artifacts-dir", open}, []string{"--artifacts-dir", "chmod 700"}},
		{"unknown flag", []string{"--port", "1"}, []string{"--help"}},
		{"stray argument", []string{"serve"}, []string{"unexpected argument"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args, env := tc.args, []string{"PATH=" + os.Getenv("PATH")}
			for len(args) > 0 && strings.Contains(args[0], "=") && !strings.HasPrefix(args[0], "-") {
				env, args = append(env, args[0]), args[1:]
			}
			cmd := exec.CommandContext(ctx, filepath.Join(binDir, "kms-emulator"), append([]string{"--listen", "127.0.0.1:0"}, args...)...)
			if tc.name == "listen not loopback" || tc.name == "listen no port" {
				cmd = exec.CommandContext(ctx, filepath.Join(binDir, "kms-emulator"), args...)
			}
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != 2 {
				t.Errorf("exit %d (%v), want 2\nstderr: %s", code, err, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q: a refused start must print no listening line", stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}
