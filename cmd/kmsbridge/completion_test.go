package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/clidocs"
)

// The program answers a completion request with a line NAME:USAGE per
// candidate, commands and flags alike, and runs nothing.
func TestShellCompletionCandidates(t *testing.T) {
	tests := []struct {
		args      []string
		want, not []string
	}{
		{[]string{"kmsbridge"}, []string{"import:generate or find a key", "record:check a ceremony record"}, []string{"gen-docs", "completion:Output"}},
		{[]string{"kmsbridge", "import", "--tok"}, []string{"--token-label:choose the token by label", "--token:"}, []string{"--module"}},
		{[]string{"kmsbridge", "record"}, []string{"verify:", "repair:"}, nil},
	}
	// urfave/cli completes the program's own level from os.Args.
	defer func(args []string) { os.Args = args }(os.Args)
	for _, tt := range tests {
		app := newApp()
		var out bytes.Buffer
		app.Writer, app.ErrWriter = &out, &out
		os.Args = append(tt.args, "--generate-shell-completion")
		if err := app.Run(context.Background(), os.Args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), "\n"+w) && !strings.HasPrefix(out.String(), w) {
				t.Errorf("%v: candidates %q lack %q", tt.args, out.String(), w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(out.String(), n) {
				t.Errorf("%v: candidates %q offer %q", tt.args, out.String(), n)
			}
		}
	}
}

// The bash script offers the names of the NAME:USAGE lines the program
// answers, for the word being completed.
func TestBashCompletionOffersNames(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	dir := t.TempDir()
	// A stand-in kmsbridge that answers as the real one does.
	prog := "#!/bin/sh\nprintf 'import:generate or find a key: then import\\nrecord:check a ceremony record\\nrenew:re-import\\n'\n"
	if err := os.WriteFile(filepath.Join(dir, "kmsbridge"), []byte(prog), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := clidocs.Completion(newApp(), "bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kmsbridge.bash"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "--norc", "-c", `source "$1"; COMP_WORDS=(kmsbridge re); COMP_CWORD=1; _kmsbridge_bash_autocomplete; echo "${COMPREPLY[*]}"`, "bash", filepath.Join(dir, "kmsbridge.bash"))
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
	got, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(got)) != "record renew" {
		t.Fatalf("bash completion of 're' = %q, %v; want \"record renew\"", got, err)
	}
}
