package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// TestCLILibraryErrorsExit2: the errors urfave/cli makes itself are usage
// errors (exit 2) that point at --help, not unexpected failures (exit 1).
func TestCLILibraryErrorsExit2(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"kmsbridge", "prepare"}, `required flag "out" not set: see kmsbridge prepare --help`},
		{[]string{"kmsbridge", "nosuch"}, `unknown command "nosuch": run kmsbridge --help`},
		{[]string{"kmsbridge", "record", "nosuch"}, `unknown command "nosuch": run kmsbridge record --help`},
		{[]string{"kmsbridge", "import", "--nosuch"}, "flag provided but not defined: -nosuch: see kmsbridge import --help"},
		{[]string{"kmsbridge", "audit-key", "create"}, `required flags "label, out" not set: see kmsbridge audit-key create --help`},
		// Commands that only group subcommands, and the hidden ones.
		{[]string{"kmsbridge", "record", "--nosuch"}, "flag provided but not defined: -nosuch: see kmsbridge record --help"},
		{[]string{"kmsbridge", "audit-key", "--nosuch"}, "flag provided but not defined: -nosuch: see kmsbridge audit-key --help"},
		{[]string{"kmsbridge", "ceremony", "--nosuch"}, "flag provided but not defined: -nosuch: see kmsbridge ceremony --help"},
		{[]string{"kmsbridge", "completion", "--nosuch"}, "flag provided but not defined: -nosuch: see kmsbridge completion --help"},
		{[]string{"kmsbridge", "gen-docs", "--nosuch"}, "flag provided but not defined: -nosuch: see kmsbridge gen-docs --help"},
	}
	for _, tt := range tests {
		app := newApp()
		app.Writer, app.ErrWriter = io.Discard, io.Discard
		err := cliUsage(app.Run(context.Background(), tt.args), tt.args)
		if code := exitCode(err); code != exitInvalidInput {
			t.Errorf("%v: exit %d, want 2 (%v)", tt.args[1:], code, err)
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args[1:], err, tt.want)
		}
	}
}

// A flag's environment variable that does not parse is a usage error too.
func TestBadEnvironmentVariableExits2(t *testing.T) {
	t.Setenv(envOneCall, "maybe")
	args := []string{"kmsbridge", "doctor"}
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	err := cliUsage(app.Run(context.Background(), args), args)
	if code := exitCode(err); code != exitInvalidInput || !strings.Contains(err.Error(), envOneCall) || !strings.HasSuffix(err.Error(), "see kmsbridge doctor --help") {
		t.Errorf("exit %d, %v; want 2 naming %s and pointing at --help", code, err, envOneCall)
	}
}

func TestExitCodesOfVerdictsAreTheirOwn(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, 0},
		{"expiring", verdictError{exitExpiring, "x"}, 6},
		{"broken", verdictError{exitBroken, "x"}, 7},
		{"wrapped broken", fmt.Errorf("status: %w", verdictError{exitBroken, "x"}), 7},
		{"invalid input stays 2", fmt.Errorf("%w: bad", kmsimport.ErrInvalidInput), 2},
		{"KMS stays 4", &kmsimport.KMSError{Op: "ListKeys"}, 4},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}
