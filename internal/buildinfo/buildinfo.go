// Package buildinfo says which build of kmsbridge is running: the version
// (a git tag such as v0.1.0, or a Go pseudo-version between tags), the
// commit, the commit's time, whether the tree had uncommitted changes, and
// the Go toolchain. Ceremony records carry it, so an auditor knows which
// build wrote them; `--version` prints it.
//
// The release build (scripts/release.sh) sets the values with -ldflags -X,
// from git, because it builds with -buildvcs=false and -trimpath. A plain
// `go build` in a git checkout gets them from the VCS stamp Go embeds
// (vcs.revision, vcs.time, vcs.modified), and `go install
// github.com/kmsbridge/kmsbridge/cmd/kmsbridge@v0.1.0` from the module
// version Go records.
package buildinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Set at link time by the release build, e.g.
// -X github.com/kmsbridge/kmsbridge/internal/buildinfo.version=v0.1.0.
var (
	version    string
	commit     string
	commitTime string // RFC 3339
	dirty      string // "true" or "false"
)

// Devel is the Version of a build that knows neither a tag nor a commit.
const Devel = "(devel)"

// Info identifies one build.
type Info struct {
	// Version is the git tag (v0.x.y), a pseudo-version
	// v0.0.0-YYYYMMDDhhmmss-<12 hex of the commit> for an untagged commit,
	// or Devel. A build from a dirty tree ends in "+dirty".
	Version string `json:"version"`
	// Commit is the full hex commit, or "" when the build does not know it.
	Commit string `json:"commit"`
	// CommitTime is the commit's time, RFC 3339 in UTC, or "".
	CommitTime string `json:"commit_time"`
	// Dirty is true when the tree had uncommitted changes.
	Dirty bool `json:"dirty"`
	// GoVersion is the toolchain that built the binary (runtime.Version).
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// Get returns the identity of the running binary.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(bi, version, commit, commitTime, dirty)
}

// resolve combines the link-time values (which win) with Go's build
// information.
func resolve(bi *debug.BuildInfo, ldVersion, ldCommit, ldTime, ldDirty string) Info {
	info := Info{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	var modVersion string
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		modVersion = bi.Main.Version
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.CommitTime = s.Value
			case "vcs.modified":
				info.Dirty = s.Value == "true"
			}
		}
	}
	if ldCommit != "" {
		info.Commit, info.CommitTime, info.Dirty = ldCommit, ldTime, ldDirty == "true"
	}
	switch {
	case ldVersion != "":
		info.Version = ldVersion
	case modVersion != "" && modVersion != Devel:
		// go install ...@v0.1.0, or Go's own stamp from a tagged checkout.
		info.Version = modVersion
	case info.Commit != "":
		info.Version = PseudoVersion(info.CommitTime, info.Commit)
	default:
		info.Version = Devel
	}
	if info.Dirty && !strings.HasSuffix(info.Version, "+dirty") {
		info.Version += "+dirty"
	}
	return info
}

// PseudoVersion is the Go pseudo-version of an untagged commit:
// v0.0.0-<commit time as YYYYMMDDhhmmss UTC>-<first 12 hex digits>. A
// commit time that does not parse is left out of the timestamp (zeros).
func PseudoVersion(commitTimeRFC3339, commit string) string {
	stamp := "00000000000000"
	if t, err := time.Parse(time.RFC3339, commitTimeRFC3339); err == nil {
		stamp = t.UTC().Format("20060102150405")
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	return "v0.0.0-" + stamp + "-" + commit
}

// Text is the human form of --version: the first line is
// "<program> <version>", then one "name: value" line each.
func (i Info) Text(program string) string {
	c := i.Commit
	if c == "" {
		c = "unknown (built without VCS information)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", program, i.Version)
	fmt.Fprintf(&b, "commit:      %s\n", c)
	if i.CommitTime != "" {
		fmt.Fprintf(&b, "commit time: %s\n", i.CommitTime)
	}
	fmt.Fprintf(&b, "dirty:       %t\n", i.Dirty)
	fmt.Fprintf(&b, "go:          %s\n", i.GoVersion)
	fmt.Fprintf(&b, "platform:    %s\n", i.Platform)
	return b.String()
}

// JSON is the --version --output json form: one object with "program"
// and the members of Info, and a newline.
func (i Info) JSON(program string) string {
	b, _ := json.Marshal(struct {
		Program string `json:"program"`
		Info
	}{program, i})
	return string(b) + "\n"
}

// Write writes the running binary's identity to w as format "text" or
// "json", and refuses any other format, writing nothing.
func Write(w io.Writer, program, format string) error {
	info := Get()
	switch format {
	case "text", "":
		_, err := io.WriteString(w, info.Text(program))
		return err
	case "json":
		_, err := io.WriteString(w, info.JSON(program))
		return err
	}
	return fmt.Errorf("--output %q: choose text or json", format)
}
