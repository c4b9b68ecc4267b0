package main

import (
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/lazyre"
)

// TestEveryPatternCompiles compiles every package-level pattern of every
// package kmsbridge links (they compile on first use, see internal/lazyre),
// so a bad one fails here rather than in a user's command.
func TestEveryPatternCompiles(t *testing.T) {
	if n := lazyre.MustCompileAll(); n < 20 {
		t.Fatalf("only %d patterns registered: kmsbridge's packages have more (is lazyre.New still used?)", n)
	}
}
