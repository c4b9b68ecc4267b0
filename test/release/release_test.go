// Package release tests the checks scripts/release.sh makes before it
// builds anything: the version it derives from git, and its refusals of a
// dirty tree and of a changelog without the version. The builds themselves
// are checked by make verify-release and make release-test, which take
// minutes.
package release

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// clone makes a throwaway clone of the repository at its HEAD commit, with
// no tags, an identity to commit and tag as, and the working tree's
// build scripts (scripts/release.sh, scripts/buildvars.sh, Makefile) and
// CHANGELOG.md committed on top (so the test checks the scripts being
// edited, not the last committed ones).
func clone(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	head := strings.TrimSpace(run(t, root, nil, "git", "rev-parse", "HEAD"))
	dir := filepath.Join(t.TempDir(), "src")
	run(t, root, nil, "git", "clone", "-q", "--no-checkout", root, dir)
	run(t, dir, nil, "git", "checkout", "-q", "--detach", head)
	for _, tag := range strings.Fields(run(t, dir, nil, "git", "tag", "-l")) {
		run(t, dir, nil, "git", "tag", "-d", tag)
	}
	run(t, dir, nil, "git", "config", "user.email", "test@example.invalid")
	run(t, dir, nil, "git", "config", "user.name", "release test")
	for _, f := range []string{"scripts/release.sh", "scripts/buildvars.sh", "Makefile", "CHANGELOG.md"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, dir, nil, "git", "add", "scripts/release.sh", "scripts/buildvars.sh", "Makefile", "CHANGELOG.md")
	run(t, dir, nil, "git", "commit", "-q", "--allow-empty", "-m", "the working tree's build scripts")
	return dir
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := command(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

func command(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// check runs the release script's checks only and returns its output and
// exit code.
func check(t *testing.T, dir string) (string, int) {
	t.Helper()
	out, err := command(dir, []string{"RELEASE_CHECK_ONLY=1"}, "bash", "scripts/release.sh")
	if ee, ok := err.(*exec.ExitError); ok {
		return out, ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out, 0
}

func TestReleaseVersionComesFromTheTag(t *testing.T) {
	dir := clone(t)
	run(t, dir, nil, "git", "tag", "v0.1.0")
	out, code := check(t, dir)
	if code != 0 || !strings.Contains(out, "version=v0.1.0 debversion=0.1.0 ") {
		t.Errorf("tagged v0.1.0: exit %d, %q; want version v0.1.0, .deb version 0.1.0", code, out)
	}
}

func TestReleaseOfAnUntaggedCommitIsAPseudoVersion(t *testing.T) {
	dir := clone(t)
	out, code := check(t, dir)
	if code != 0 || !strings.Contains(out, "version=v0.0.0-") || !strings.Contains(out, "debversion=0.0.0~") {
		t.Errorf("untagged: exit %d, %q; want a v0.0.0- pseudo-version", code, out)
	}
}

func TestReleaseRefusesATagTheChangelogDoesNotDescribe(t *testing.T) {
	dir := clone(t)
	run(t, dir, nil, "git", "tag", "v9.8.7")
	out, code := check(t, dir)
	if code != 2 || !strings.Contains(out, "CHANGELOG.md has no '## [9.8.7]' section") {
		t.Errorf("tag v9.8.7 without a changelog section: exit %d, %q; want exit 2 naming the missing section", code, out)
	}
}

func TestReleaseRefusesAChangelogWithoutUnreleased(t *testing.T) {
	dir := clone(t)
	b, err := os.ReadFile(filepath.Join(dir, "CHANGELOG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "CHANGELOG.md"), []byte(strings.Replace(string(b), "\n## [Unreleased]\n", "\n## Later\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, nil, "git", "commit", "-qam", "changelog without Unreleased")
	out, code := check(t, dir)
	if code != 2 || !strings.Contains(out, "no '## [Unreleased]' section") {
		t.Errorf("untagged without [Unreleased]: exit %d, %q", code, out)
	}
}

func TestReleaseRefusesADirtyTree(t *testing.T) {
	dir := clone(t)
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := check(t, dir)
	if code != 2 || !strings.Contains(out, "uncommitted changes") {
		t.Errorf("dirty tree: exit %d, %q; want exit 2 naming the uncommitted changes", code, out)
	}
	out, err := command(dir, []string{"RELEASE_CHECK_ONLY=1", "ALLOW_DIRTY=1"}, "bash", "scripts/release.sh")
	if err != nil || !strings.Contains(out, "+dirty debversion=") {
		t.Errorf("ALLOW_DIRTY=1: %v, %q; want a version marked +dirty", err, out)
	}
}

// make build (the binaries the README walkthrough and the demo use) stamps
// the commit as the release does, so a ceremony record written by them
// names its build instead of "(devel)".
func TestMakeBuildSaysWhichCommitItIs(t *testing.T) {
	dir := clone(t)
	head := strings.TrimSpace(run(t, dir, nil, "git", "rev-parse", "HEAD"))
	run(t, dir, nil, "make", "build")
	for _, bin := range []string{"bin/kmsbridge", "bin/kms-emulator"} {
		out := run(t, dir, nil, bin, "--version", "--output", "json")
		var info struct {
			Version string `json:"version"`
			Commit  string `json:"commit"`
			Dirty   bool   `json:"dirty"`
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("%s --version --output json: %v\n%s", bin, err, out)
		}
		if info.Commit != head || !strings.HasPrefix(info.Version, "v0.0.0-") || !strings.HasSuffix(info.Version, head[:12]) || info.Dirty {
			t.Errorf("%s from make build says %+v; want the pseudo-version of commit %s, not dirty", bin, info, head)
		}
	}
}
