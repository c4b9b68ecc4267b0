package kmsimport

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Test-only crash points. An end-to-end test sets both variables to make
// the process SIGKILL itself at a named point, to prove a re-run recovers
// from a crash there. The guard's exact value is required, so neither can
// take effect by accident.
const (
	// EnvTestKillAt names the point: "step:NAME" after step NAME is
	// recorded, "intent:OP" after OP's intent is durable and before OP is
	// called, "called:OP" after OP returned and before its outcome is
	// written; "#N" after it means the point's N-th passage.
	EnvTestKillAt = "KMSBRIDGE_TEST_KILL_AT"
	// EnvTestKillGuard must hold TestKillGuard.
	EnvTestKillGuard = "KMSBRIDGE_TEST_KILL_GUARD"
	// TestKillGuard is the guard's value.
	TestKillGuard = "kill kmsbridge on purpose, for a crash test"
)

// CrashAt kills the process if a test asked for a crash at point:
// EnvTestKillAt is point (its first passage) or "point#N" (its N-th
// passage, so a test can stop a ceremony at the same step of a later key).
func CrashAt(point string) {
	if os.Getenv(EnvTestKillGuard) != TestKillGuard {
		return
	}
	at, nth, counted := strings.Cut(os.Getenv(EnvTestKillAt), "#")
	if at != point {
		return
	}
	want := 1
	if counted {
		want, _ = strconv.Atoi(nth)
	}
	crashMu.Lock()
	crashPassed[point]++
	n := crashPassed[point]
	crashMu.Unlock()
	if n != want {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// crashPassed counts each crash point's passages in this process.
var (
	crashMu     sync.Mutex
	crashPassed = map[string]int{}
)

// CrashPoint is the crash point of the commands outside the import flows.
// With EnvTestKillAt set to point the process SIGKILLs itself; set to
// "sigint:"+point it sends itself SIGINT and returns once ctx (the
// command's signal context) has seen it, so a test can stop a command
// exactly at a step boundary.
func CrashPoint(ctx context.Context, point string) {
	if os.Getenv(EnvTestKillGuard) != TestKillGuard {
		return
	}
	CrashAt(point)
	if os.Getenv(EnvTestKillAt) != "sigint:"+point {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
}
