package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// A REST front end on anything but loopback is a usage error (exit 2),
// refused before anything listens.
func TestRESTListenMustBeLoopback(t *testing.T) {
	var out bytes.Buffer
	err := newApp(&out).Run(context.Background(), []string{"gcp-kms-emulator", "--rest-listen", "0.0.0.0:0"})
	var u usageError
	if !errors.As(err, &u) || !strings.Contains(err.Error(), "--rest-listen") || !strings.Contains(err.Error(), "not a loopback address") || out.Len() != 0 {
		t.Fatalf("got %v, printed %q", err, out.String())
	}
}
