package readme

// TestReadme runs README.md. The README is executable documentation: a
// README example that stops working fails `make test`.
//
// How the README is run (and how to write a block that runs):
//
//   - Every fenced block, in document order, is one step of a single bash
//     session, as a reader would type along: what one block exports, the
//     directory it changes to and the processes it starts are there for the
//     next. The session starts in a fresh directory holding bin/ (every
//     ./cmd/... binary, built from this checkout as `make build` builds
//     them), with an empty HOME and TMPDIR and no AWS_*, KMSBRIDGE_* or
//     SOFTHSM2_CONF in its environment; the README's own blocks set up the
//     rest (the walkthrough's first block puts bin/ on PATH, provisions the
//     SoftHSM2 token and starts the emulator).
//   - A block with "$ " prompts is a console transcript: each "$ " line (and
//     its "\" continuation lines, and a here-document) is a command; the
//     lines under it are the output it shows (stdout and stderr as a
//     terminal interleaves them), compared after normalising what differs
//     between runs (ids, digests, times, dates, ports, counts of days,
//     runs of spaces). A line "..." stands for any number of lines; a
//     command whose trailing comment says "excerpt" only needs the lines
//     shown, in order, anywhere in its output. A command with no output
//     under it is only run.
//   - Any other shell block (``` with no info string, sh, bash, console) is
//     a script: each logical line is a command, its output not compared.
//   - Every command must exit 0, unless its trailing comment says
//     "# exit N" (or "exits N"), then it must exit N.
//   - An HTML comment on the line before the fence changes that:
//     <!-- readme-test: file NAME -->      the block is written to NAME (in
//     the session's directory) instead of run: ceremony files, key lists.
//     <!-- readme-test: skip REASON -->    not run; the test prints REASON.
//     For what cannot run here (real AWS, a
//     release download, the test suite itself).
//     <!-- readme-test: requires CMD -->   run only when CMD is installed;
//     otherwise skipped, saying so.
//   - A block of another kind (yaml, csv, json, text) must carry a file or
//     skip marker, and a skip marker must give a reason: the test fails
//     on a block that neither runs nor says why not.
//
// docs/contributing.md says the same for those who write README sections.

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
)

// commandTimeout bounds one README command: the slowest (a multi-Region
// import, a rotation's wait) take seconds; this only stops a hang.
const commandTimeout = 5 * time.Minute

// -until LINE stops after the README's blocks up to LINE: for working on
// one section (the blocks before it still run, as they set it up).
var until = flag.Int("until", 0, "run only the README blocks that start before this line")

func TestReadme(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseBlocks(string(text))
	if err != nil {
		t.Fatal(err)
	}
	// Every block runs, is a file, or says why not: checked before anything
	// runs, so a new unmarked block fails at once.
	for _, err := range checkMarkers(blocks) {
		t.Error(err)
	}
	if t.Failed() && *until == 0 {
		t.FailNow()
	}

	work := t.TempDir()
	build(t, filepath.Join(work, "bin"))
	s := startSession(t, work)

	for _, b := range blocks {
		if *until > 0 && b.Line >= *until {
			t.Logf("README.md:%d and after: not run (-until %d)", b.Line, *until)
			break
		}
		switch b.Marker.Kind {
		case "skip":
			t.Logf("README.md:%d: skipped: %s", b.Line, b.Marker.Arg)
			continue
		case "requires":
			if _, err := exec.LookPath(b.Marker.Arg); err != nil {
				t.Logf("README.md:%d: skipped: needs %s, which is not installed here", b.Line, b.Marker.Arg)
				continue
			}
		case "file":
			body := strings.Join(b.Body, "\n") + "\n"
			if strings.Contains(body, "__READMETEST_EOF__") {
				t.Fatalf("README.md:%d: block contains the here-document terminator", b.Line)
			}
			script := "cat > " + shellQuote(b.Marker.Arg) + " <<'__READMETEST_EOF__'\n" + body + "__READMETEST_EOF__"
			if out, rc := s.run(t, script); rc != 0 {
				t.Fatalf("README.md:%d: writing %s: exit %d: %s", b.Line, b.Marker.Arg, rc, out)
			}
			continue
		}
		for _, c := range commands(b) {
			out, rc := s.run(t, c.Text)
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if out == "" {
				lines = nil
			}
			var problems []string
			if rc != c.Exit {
				problems = append(problems, fmt.Sprintf("exit %d, the README says %d", rc, c.Exit))
			}
			if c.HasShown {
				if err := match(c.Want, lines, c.Excerpt); err != nil {
					problems = append(problems, "output differs: "+err.Error())
				}
			}
			if len(problems) > 0 {
				t.Errorf("README.md:%d: %s\n$ %s\n--- output ---\n%s--- end ---", c.Line, strings.Join(problems, "; "), c.Text, out)
			}
		}
	}
}

// checkMarkers lists the blocks that neither run nor say why not: a
// non-shell block without a file or skip marker, a marker without its
// argument, an unknown marker.
func checkMarkers(blocks []block) []error {
	var errs []error
	for _, b := range blocks {
		switch b.Marker.Kind {
		case "":
			if !shellInfo(b.Info) {
				errs = append(errs, fmt.Errorf("README.md:%d: a %q block neither runs nor is marked: put <!-- readme-test: file NAME --> or <!-- readme-test: skip REASON --> on the line before it", b.Line, b.Info))
			}
		case "skip", "file", "requires":
			if b.Marker.Arg == "" {
				errs = append(errs, fmt.Errorf("README.md:%d: <!-- readme-test: %s --> needs its %s", b.Line, b.Marker.Kind, map[string]string{"skip": "reason", "file": "file name", "requires": "command"}[b.Marker.Kind]))
			}
		default:
			errs = append(errs, fmt.Errorf("README.md:%d: unknown readme-test marker %q (skip, file, requires)", b.Line, b.Marker.Kind))
		}
	}
	return errs
}

// build puts every ./cmd/... binary of this checkout in dir, as `make
// build` puts them in bin/.
func build(t *testing.T, dir string) {
	t.Helper()
	// make test builds ./cmd/... once for every test package
	// (KMSBRIDGE_TEST_BIN_DIR); the README's bin/ links to those binaries.
	if from := os.Getenv("KMSBRIDGE_TEST_BIN_DIR"); from != "" {
		linkBinaries(t, from, dir)
		return
	}
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "./cmd/...")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
}

// linkBinaries links every file of from into dir.
func linkBinaries(t *testing.T, from, dir string) {
	t.Helper()
	from, err := filepath.Abs(from)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil || len(ents) == 0 {
		t.Fatalf("KMSBRIDGE_TEST_BIN_DIR=%s holds no binaries (%v): build them with go build -o DIR/ ./cmd/...", from, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Symlink(filepath.Join(from, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// session is one bash process that runs the README's commands one after
// another, like a terminal.
type session struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	ctl    string
	n      int
	stderr bytes.Buffer
}

func startSession(t *testing.T, work string) *session {
	t.Helper()
	for _, d := range []string{"home", "tmp", "ctl"} {
		if err := os.MkdirAll(filepath.Join(work, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := &session{ctl: filepath.Join(work, "ctl")}
	s.cmd = exec.Command("bash", "--noprofile", "--norc")
	s.cmd.Dir = work
	s.cmd.Env = sessionEnv(work)
	// Its own process group, so that what the README starts in the
	// background (the emulator) ends with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Stderr = &s.stderr
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.out = bufio.NewReader(stdout)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
		if t.Failed() && s.stderr.Len() > 0 {
			t.Logf("the session's own stderr:\n%s", s.stderr.String())
		}
	})
	return s
}

// sessionEnv is a clean environment: nothing of the developer's AWS,
// kmsbridge or SoftHSM2 settings leaks into what the README shows.
func sessionEnv(work string) []string {
	env := []string{
		"HOME=" + filepath.Join(work, "home"),
		"TMPDIR=" + filepath.Join(work, "tmp"),
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"TERM=dumb",
		"TZ=UTC",
	}
	// The emulators the README starts take their RSA key pairs from a
	// test key cache (each pair at most once per emulator run): `make
	// test` shares one with test/e2e, plain `go test` keeps one per run.
	// Nothing the README shows depends on it.
	keys := os.Getenv(emukeys.EnvVar)
	if keys == "" {
		keys = filepath.Join(work, "ctl", "emulator-keys")
	}
	env = append(env, emukeys.EnvVar+"="+keys)
	// A pyenv-installed aws CLI finds its interpreter through PYENV_ROOT,
	// which defaults to the real HOME's.
	if r := os.Getenv("PYENV_ROOT"); r != "" {
		env = append(env, "PYENV_ROOT="+r)
	} else if h, err := os.UserHomeDir(); err == nil {
		if _, err := os.Stat(filepath.Join(h, ".pyenv")); err == nil {
			env = append(env, "PYENV_ROOT="+filepath.Join(h, ".pyenv"))
		}
	}
	return env
}

const doneMark = "__READMETEST_DONE__ "

// run runs one command in the session and returns what it wrote (stdout
// and stderr together) and its exit status.
func (s *session) run(t *testing.T, text string) (string, int) {
	t.Helper()
	s.n++
	script := filepath.Join(s.ctl, fmt.Sprintf("cmd%03d.sh", s.n))
	outFile := filepath.Join(s.ctl, fmt.Sprintf("out%03d", s.n))
	if err := os.WriteFile(script, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// source: what the command exports or changes stays for the next one.
	line := fmt.Sprintf("source %s >%s 2>&1 </dev/null; printf '\\n%s%%d\\n' $?\n", shellQuote(script), shellQuote(outFile), doneMark)
	if _, err := io.WriteString(s.stdin, line); err != nil {
		t.Fatalf("the session ended: %v\n%s", err, s.stderr.String())
	}
	type result struct {
		rc  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		for {
			l, err := s.out.ReadString('\n')
			if err != nil {
				done <- result{err: err}
				return
			}
			if rest, ok := strings.CutPrefix(strings.TrimSpace(l), strings.TrimSpace(doneMark)); ok {
				rc, err := strconv.Atoi(strings.TrimSpace(rest))
				done <- result{rc: rc, err: err}
				return
			}
		}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(commandTimeout):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		out, _ := os.ReadFile(outFile)
		t.Fatalf("$ %s\nstill running after %s; its output so far:\n%s", text, commandTimeout, out)
	}
	if r.err != nil {
		out, _ := os.ReadFile(outFile)
		t.Fatalf("$ %s\nthe session ended: %v\n%s%s", text, r.err, out, s.stderr.String())
	}
	out, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(out), r.rc
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
