//go:build linux

package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// hardenProcess keeps the PIN out of core files and out of other
// processes' reach, before anything is read: no core file is written
// (RLIMIT_CORE 0, soft and hard, so the process cannot raise it again),
// and the process is not dumpable (PR_SET_DUMPABLE 0), which also stops
// ptrace attaches and /proc/PID/mem reads by other processes of the same
// user. A PIN was once found in a core dump of kmsbridge.
func hardenProcess() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("setting RLIMIT_CORE to 0 so no core file can hold the PIN: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0) so the process memory cannot be dumped or read by others: %w", err)
	}
	return nil
}
