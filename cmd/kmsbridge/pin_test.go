package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestPINEnvironmentIsUnsetOnceRead: KMSBRIDGE_PIN and KMSBRIDGE_SO_PIN are
// gone from the environment once read, so no child process inherits them
// and nothing reads them again.
func TestPINEnvironmentIsUnsetOnceRead(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		env  string
		read func() ([]byte, error)
	}{
		{envPIN, func() ([]byte, error) { return readPIN("", log) }},
		{envSOPIN, func() ([]byte, error) { return readSOPIN("", log) }},
	} {
		t.Setenv(tt.env, "731904")
		pin, err := tt.read()
		if err != nil || string(pin) != "731904" {
			t.Fatalf("%s: got %q, %v", tt.env, pin, err)
		}
		if v, ok := os.LookupEnv(tt.env); ok {
			t.Errorf("%s is still set (%q) after the PIN was read", tt.env, v)
		}
	}
}

// TestPINFileIsReadIntoItsOwnBytes: a PIN file's trailing newline is cut
// and the PIN comes back as bytes the caller can clear.
func TestPINFileIsReadIntoItsOwnBytes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(p, []byte("2468\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pin, err := readPINFile("--pin-file", p, nil)
	if err != nil || string(pin) != "2468" {
		t.Fatalf("readPINFile = %q, %v", pin, err)
	}
	if cap(pin) < 4 {
		t.Fatalf("cap %d", cap(pin))
	}
	if rest := pin[:cap(pin)][len(pin):]; string(rest[:2]) != "\x00\x00" {
		t.Errorf("the bytes after the PIN in its buffer are %q, want them cleared", rest[:2])
	}
}
