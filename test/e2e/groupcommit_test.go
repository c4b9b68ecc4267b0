package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// doneLine is a bulk run's progress line for a key it finished (stderr,
// not a terminal): what the operator was told is done.
var doneLine = regexp.MustCompile(`(?m)^key \d+/\d+ (\S+) done: (\S+) \[`)

// TestExactlyOnceKilledParallelBulkImport: a 16-way bulk import with a
// signed record, SIGKILLed at random moments six times, then run to the
// end. The journal and the record share fsyncs between the workers (group
// commit), and the record's entries are signed beside each other (format
// kmsbridge-record/3); after every kill each key the run had reported done
// is in the journal (its alias's successful outcome) and has its entries
// in the record (its verify step, ok, naming its label and KMS key),
// which verifies, signatures and chain; the last run finishes; and in the
// end every HSM key has exactly one KMS key with its material. The kill
// times are random (the seed is logged), so over runs the kills land at
// every point of a key's flow, inside and between group commits and while
// entries are being signed.
func TestExactlyOnceKilledParallelBulkImport(t *testing.T) {
	t.Parallel()
	const n = 40
	emu := startEmulator(t, "--latency", "15ms", "--latency-jitter", "10ms")
	tok, state, rec, pub, labels, args := signedBulkRun(t, emu, "crash", n, 16)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill times from seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	reported := map[string]string{} // label -> KMS key id, as a killed run reported it done
	for kill := 0; kill < 6; kill++ {
		// Killed once the run has reported some keys done, and a random
		// while later: a timer alone would land anywhere on a machine as
		// loaded as a CI runner, often before the first key.
		// A re-run reports the keys done before it done again, so each
		// kill waits for keys past those: the kills move through the run.
		afterDone, extra := min(len(reported)+1+rnd.IntN(5), n-1), time.Duration(rnd.IntN(250))*time.Millisecond
		stderr, killed := runKilledAfterDone(t, tok, afterDone, extra, args...)
		for _, m := range doneLine.FindAllStringSubmatch(stderr, -1) {
			reported[m[1]] = m[2]
		}
		t.Logf("kill %d, %d keys done and %v later: killed %v, %d keys reported done so far", kill+1, afterDone, extra, killed, len(reported))
		// What the operator was told is done is durable in both files.
		journal := readJournals(t, state)
		recBytes, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		for label, id := range reported {
			// A key finished by this run has its alias's outcome; one a
			// re-run found already finished (its alias made before a
			// kill, the outcome lost with it) was verified in KMS, and
			// the journal has its key from the run that made it.
			if !aliasOutcomeOK(journal, label) && !strings.Contains(journal, id) {
				t.Errorf("kill %d: %s was reported done as %s, but the journal has neither a successful CreateAlias for it nor the key", kill+1, label, id)
			}
			if !recordHasStep(recBytes, "verify", label, id) {
				t.Errorf("kill %d: %s was reported done as %s, but the record has no successful verify step for it", kill+1, label, id)
			}
		}
		if r := kmsbridge(t, nil, "record", "verify", "--public-key", pub, rec); r.Code != 0 {
			t.Fatalf("kill %d: record verify: exit %d\n%s%s", kill+1, r.Code, r.Stdout, r.Stderr)
		}
	}
	r := kmsbridge(t, tok, args...)
	if r.Code != 0 {
		t.Fatalf("the run after the kills: exit %d\n%s", r.Code, tail(r.Stderr, 30))
	}
	wantExactlyOnce(t, home(emu), tok, state, rec, labels...)
	if r := kmsbridge(t, nil, "record", "verify", "--public-key", pub, rec); r.Code != 0 || !strings.Contains(r.Stdout, "the record verifies") {
		t.Errorf("record verify at the end: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// recordHasStep says whether the record (JSON lines) holds a successful
// entry of step for the key of a bulk run's list with HSM label label
// (Outputs CeremonyKeyLabel) and the KMS key id.
func recordHasStep(rec []byte, step, label, id string) bool {
	for _, line := range bytes.Split(rec, []byte("\n")) {
		var e struct {
			Step, Outcome   string
			Inputs, Outputs map[string]string
		}
		if json.Unmarshal(line, &e) == nil && e.Step == step && e.Outcome == "ok" &&
			e.Outputs["CeremonyKeyLabel"] == label && e.Outputs["KmsKeyId"] == id {
			return true
		}
	}
	return false
}

// aliasOutcomeOK says whether journal (JSON lines) holds a successful
// outcome of a CreateAlias for alias/label.
func aliasOutcomeOK(journal, label string) bool {
	for _, line := range strings.Split(journal, "\n") {
		if strings.Contains(line, `"kind":"outcome"`) && strings.Contains(line, `"op":"CreateAlias"`) &&
			strings.Contains(line, `"result":"ok"`) && strings.Contains(line, `"alias/`+label+`"`) {
			return true
		}
	}
	return false
}

// runKilledAfterDone runs kmsbridge like kmsbridge(), SIGKILLing it d
// after its stderr has reported done keys done (or after two minutes),
// unless it ends first; it returns its stderr and whether it was killed.
func runKilledAfterDone(t *testing.T, tok *softhsm.Token, done int, d time.Duration, args ...string) (string, bool) {
	t.Helper()
	env := cleanEnv(t, []string{"KMSBRIDGE_PKCS11_MODULE=" + softhsm.DefaultModule, "KMSBRIDGE_PIN=" + softhsm.TestPIN, tok.Environ()})
	cmd := exec.Command(filepath.Join(binDir, "kmsbridge"), args...)
	cmd.Env = env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	reached := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pipe)
		n := 0
		for sc.Scan() {
			stderr.Write(sc.Bytes())
			stderr.WriteByte('\n')
			if doneLine.Match(sc.Bytes()) {
				if n++; n == done {
					close(reached)
				}
			}
		}
	}()
	ended := make(chan struct{})
	go func() { <-read; _ = cmd.Wait(); close(ended) }()
	select {
	case <-ended:
		return stderr.String(), false
	case <-reached:
		time.Sleep(d)
	case <-time.After(2 * time.Minute):
	}
	killed := cmd.Process.Signal(syscall.SIGKILL) == nil
	<-ended
	return stderr.String(), killed
}

// TestExactlyOnceBulkKilledAfterDeferredAppends: a bulk run writes its
// outcomes and step entries (journal and record) at once and waits for
// their fsync only at the next intent or before it reports a key done
// (docs/exactly-once.md, "Durable when it must be"). Each kill here lands
// right after such deferred appends, before their fsync: after a step's
// entry (the step's journal outcome written just before it), for every
// step that ends with a change (generate, CreateKey, ImportKeyMaterial,
// CreateAlias) and after verify, at a later key each time. After every
// kill the record verifies, and no key is reported done that the record
// does not show verified; the last run finishes, and every HSM key has
// exactly one KMS key with its material.
func TestExactlyOnceBulkKilledAfterDeferredAppends(t *testing.T) {
	t.Parallel()
	emu := startEmulator(t, "--latency", "10ms", "--latency-jitter", "5ms")
	tok, state, rec, pub, labels, args := signedBulkRun(t, emu, "deferred", 24, 8)
	// The n-th passage of each point in its run: keys done by earlier runs
	// are skipped (no steps), so the kills move through the list.
	points := []string{"step:generate-hsm-key#2", "step:create-kms-key#3", "step:import#2", "step:alias#4", "step:verify#3"}
	for _, at := range points {
		r := kmsbridge(t, tok, append([]string{killAt(at), killGuard}, args...)...)
		if r.Code != -1 { // killed by a signal
			t.Fatalf("%s: not killed there: exit %d\n%s", at, r.Code, tail(r.Stderr, 10))
		}
		recBytes, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range doneLine.FindAllStringSubmatch(r.Stderr, -1) {
			if !recordHasStep(recBytes, "verify", m[1], m[2]) {
				t.Errorf("killed at %s: %s was reported done as %s, but the record has no successful verify step for it", at, m[1], m[2])
			}
		}
		if v := kmsbridge(t, nil, "record", "verify", "--public-key", pub, rec); v.Code != 0 {
			t.Fatalf("killed at %s: record verify: exit %d\n%s%s", at, v.Code, v.Stdout, v.Stderr)
		}
	}
	r := kmsbridge(t, tok, args...)
	if r.Code != 0 {
		t.Fatalf("the run after the kills: exit %d\n%s", r.Code, tail(r.Stderr, 30))
	}
	wantExactlyOnce(t, home(emu), tok, state, rec, labels...)
	if r := kmsbridge(t, nil, "record", "verify", "--public-key", pub, rec); r.Code != 0 || !strings.Contains(r.Stdout, "the record verifies") {
		t.Errorf("record verify at the end: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
}

// signedBulkRun sets up a bulk import of n AES keys labelled prefix-00...
// with --parallel parallel against emu, on a new token with an audit key,
// signing a record: it returns the token, the state directory, the record
// and the audit public key's paths, the labels, and the command's
// arguments.
func signedBulkRun(t *testing.T, emu *emulator, prefix string, n, parallel int) (tok *softhsm.Token, state, rec, pub string, labels []string, args []string) {
	t.Helper()
	tok = newToken(t)
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	rec, pub = filepath.Join(dir, "record.jsonl"), filepath.Join(dir, "audit.pem")
	if r := kmsbridge(t, tok, "audit-key", "create", "--token-label", tok.Label, "--label", "audit", "--out", pub, "--record", rec); r.Code != 0 {
		t.Fatalf("audit-key create: %s", r.Stderr)
	}
	var b strings.Builder
	b.WriteString("hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry\n")
	for i := 0; i < n; i++ {
		label := fmt.Sprintf("%s-%02d", prefix, i)
		labels = append(labels, label)
		fmt.Fprintf(&b, "%s,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/%s,RSAES_OAEP_SHA_1,RSA_2048,true\n", label, label)
	}
	list := filepath.Join(dir, "keys.csv")
	if err := os.WriteFile(list, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args = []string{"import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
		"--from", list, "--parallel", fmt.Sprint(parallel), "--kms-rate", "off", "--record", rec, "--audit-key", "audit", "--state-dir", state}
	return tok, state, rec, pub, labels, args
}
