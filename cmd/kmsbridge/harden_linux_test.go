//go:build linux

package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestHardenProcess: after hardenProcess the process writes no core file
// (soft and hard RLIMIT_CORE 0) and is not dumpable.
func TestHardenProcess(t *testing.T) {
	if err := hardenProcess(); err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != 0 || lim.Max != 0 {
		t.Errorf("RLIMIT_CORE is %d/%d, want 0/0", lim.Cur, lim.Max)
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d != 0 {
		t.Errorf("PR_GET_DUMPABLE is %d, want 0", d)
	}
}
