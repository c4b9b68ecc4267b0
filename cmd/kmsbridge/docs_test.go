package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/clidocs"
)

// TestCLIReferenceIsCurrent fails when docs/cli-reference.md is not what
// the CLI's own definitions generate, e.g. after a flag was added.
func TestCLIReferenceIsCurrent(t *testing.T) {
	path := filepath.Join("..", "..", referencePath)
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: generate it with `make docs`", err)
	}
	if want := reference(newApp()); string(got) != want {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(want, "\n")
		line := 0
		for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
			line++
		}
		t.Fatalf("%s differs from what the CLI generates (first at line %d): regenerate it with `make docs` and commit it", referencePath, line+1)
	}
}

// TestEveryCommandHasAManPage checks that each visible command, at every
// depth, gets a page that names its flags.
func TestEveryCommandHasAManPage(t *testing.T) {
	app := newApp()
	pages := clidocs.Pages(app)
	names := map[string]bool{}
	for _, p := range pages {
		names[p.Name] = true
	}
	for _, want := range []string{"kmsbridge", "kmsbridge-import", "kmsbridge-record-verify", "kmsbridge-ceremony-run", "kmsbridge-completion"} {
		if !names[want] {
			t.Errorf("no man page %s among %v", want, names)
		}
	}
	if names["kmsbridge-gen-docs"] || names["kmsbridge-help"] {
		t.Errorf("hidden commands got a man page: %v", names)
	}
	for _, p := range pages {
		if p.Name != "kmsbridge-import" {
			continue
		}
		man := string(clidocs.Man(p, pages, ""))
		for _, want := range []string{".TH KMSBRIDGE-IMPORT 1", `\fB--key-label\fP \fILABEL\fP`, ".SH EXAMPLES", "kmsbridge import --module"} {
			if !strings.Contains(man, want) {
				t.Errorf("man page of import lacks %q", want)
			}
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	app := newApp()
	for shell, want := range map[string]string{
		"bash": "complete -o bashdefault -o default -o nospace -F _kmsbridge_bash_autocomplete kmsbridge",
		"zsh":  "#compdef kmsbridge",
		"fish": "complete -x -c kmsbridge -n '__fish_kmsbridge_no_subcommand' -a 'import'",
	} {
		got, err := clidocs.Completion(app, shell)
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("completion %s = %v, %q...; want it to contain %q", shell, err, got[:min(len(got), 200)], want)
		}
	}
	if _, err := clidocs.Completion(app, "tcsh"); err == nil || !strings.Contains(err.Error(), "bash, zsh, fish") {
		t.Errorf("completion tcsh = %v, want an error naming the shells", err)
	}
}
