package buildinfo

import (
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func vcs(rev, when, modified string) *debug.BuildInfo {
	return &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/kmsbridge/kmsbridge", Version: Devel},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: when},
			{Key: "vcs.modified", Value: modified},
		},
	}
}

const rev = "201932f0123456789abcdef0123456789abcdef0"

func TestResolve(t *testing.T) {
	for _, tt := range []struct {
		name                        string
		bi                          *debug.BuildInfo
		ldVersion, ldCommit, ldTime string
		ldDirty                     string
		wantVersion, wantCommit     string
		wantDirty                   bool
	}{
		{name: "ok release build: link-time values win over the VCS stamp",
			bi: vcs("ffff", "2020-01-01T00:00:00Z", "true"), ldVersion: "v0.1.0", ldCommit: rev, ldTime: "2026-11-30T03:00:00Z", ldDirty: "false",
			wantVersion: "v0.1.0", wantCommit: rev},
		{name: "ok go build in a checkout: pseudo-version from the VCS stamp",
			bi:          vcs(rev, "2026-11-30T03:04:05Z", "false"),
			wantVersion: "v0.0.0-20261130030405-201932f01234", wantCommit: rev},
		{name: "ok dirty tree is marked",
			bi:          vcs(rev, "2026-11-30T03:04:05Z", "true"),
			wantVersion: "v0.0.0-20261130030405-201932f01234+dirty", wantCommit: rev, wantDirty: true},
		{name: "ok link-time dirty is marked once",
			ldVersion: "v0.1.0+dirty", ldCommit: rev, ldDirty: "true",
			wantVersion: "v0.1.0+dirty", wantCommit: rev, wantDirty: true},
		{name: "ok go install of a module version",
			bi:          &debug.BuildInfo{Main: debug.Module{Path: "github.com/kmsbridge/kmsbridge", Version: "v0.1.0"}},
			wantVersion: "v0.1.0"},
		{name: "ok nothing known",
			bi:          &debug.BuildInfo{Main: debug.Module{Version: Devel}},
			wantVersion: Devel},
		{name: "ok no build info at all", wantVersion: Devel},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.bi, tt.ldVersion, tt.ldCommit, tt.ldTime, tt.ldDirty)
			if got.Version != tt.wantVersion || got.Commit != tt.wantCommit || got.Dirty != tt.wantDirty {
				t.Errorf("resolve = %+v, want version %q commit %q dirty %v", got, tt.wantVersion, tt.wantCommit, tt.wantDirty)
			}
			if got.GoVersion == "" || !strings.Contains(got.Platform, "/") {
				t.Errorf("resolve = %+v: Go version and platform must always be known", got)
			}
		})
	}
}

func TestPseudoVersionWithoutATime(t *testing.T) {
	if got := PseudoVersion("", rev); got != "v0.0.0-00000000000000-201932f01234" {
		t.Errorf("PseudoVersion = %q", got)
	}
}

func TestTextNamesEveryField(t *testing.T) {
	i := Info{Version: "v0.1.0", Commit: rev, CommitTime: "2026-11-30T03:00:00Z", GoVersion: "go1.26.8", Platform: "linux/arm64"}
	got := i.Text("kmsbridge")
	for _, want := range []string{"kmsbridge v0.1.0\n", rev, "2026-11-30T03:00:00Z", "dirty:       false", "go1.26.8", "linux/arm64"} {
		if !strings.Contains(got, want) {
			t.Errorf("Text() = %q, want it to contain %q", got, want)
		}
	}
	if got := (Info{Version: Devel}).Text("kmsbridge"); !strings.Contains(got, "commit:      unknown") {
		t.Errorf("Text() without a commit = %q, want it to say the commit is unknown", got)
	}
}

func TestJSONIsOneObjectWithTheProgram(t *testing.T) {
	i := Info{Version: "v0.1.0", Commit: rev, Dirty: true, GoVersion: "go1.26.8", Platform: "linux/amd64"}
	var got map[string]any
	if err := json.Unmarshal([]byte(i.JSON("kms-emulator")), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"program": "kms-emulator", "version": "v0.1.0", "commit": rev, "commit_time": "", "dirty": true, "go_version": "go1.26.8", "platform": "linux/amd64"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("JSON()[%q] = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("JSON() = %v, want exactly the members %v", got, want)
	}
}

func TestWriteRefusesAnUnknownFormat(t *testing.T) {
	var b strings.Builder
	if err := Write(&b, "kmsbridge", "yaml"); err == nil || !strings.Contains(err.Error(), "text or json") || b.Len() != 0 {
		t.Errorf("Write(yaml) = %v, wrote %q; want an error naming the choices and nothing written", err, b.String())
	}
	if err := Write(&b, "kmsbridge", "json"); err != nil || !strings.HasPrefix(b.String(), `{"program":"kmsbridge"`) {
		t.Errorf("Write(json) = %v, wrote %q", err, b.String())
	}
}
