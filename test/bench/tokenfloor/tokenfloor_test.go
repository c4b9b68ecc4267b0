package main

import (
	"os/exec"
	"strings"
	"testing"
)

// tokenfloor is a baseline only if it shares nothing with what it
// measures: no kmsbridge package may be among its dependencies.
func TestTokenFloorSharesNoCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/kmsbridge/kmsbridge") && pkg != "github.com/kmsbridge/kmsbridge/test/bench/tokenfloor" {
			t.Errorf("tokenfloor depends on %s: a baseline that shares code with kmsbridge inherits its limits", pkg)
		}
	}
}
