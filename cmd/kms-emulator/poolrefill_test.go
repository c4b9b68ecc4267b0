package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// cpuNanos is the CPU time all of pid's threads have run, from
// /proc/PID/task/*/schedstat (its first field, nanoseconds on a CPU).
func cpuNanos(t *testing.T, pid int) int64 {
	t.Helper()
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(stats) == 0 {
		t.Skipf("no /proc/%d/task/*/schedstat (%v): this check needs Linux's per-thread scheduler statistics", pid, err)
	}
	var sum int64
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended meanwhile
		}
		n, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", f, b)
		}
		sum += n
	}
	return sum
}

// takeWrappingKeys makes n GetParametersForImport calls for RSA_2048.
func takeWrappingKeys(t *testing.T, c *kms.Client, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		k, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetParametersForImport(context.Background(), &kms.GetParametersForImportInput{KeyId: k.KeyMetadata.KeyId,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPoolRefillFlagStopsBackgroundWork: with --wrapping-key-pool-refill=false
// (what make bench passes, test/bench/bulkbench) the emulator does no work
// of its own once its pool is taken and it sits idle, so it takes no CPU
// from a run being measured; with the default it regenerates the pairs
// taken as soon as it is idle (the control, showing the check can fail).
// RSA-2048 generation costs tens of milliseconds of CPU; an idle Go process
// next to nothing.
func TestPoolRefillFlagStopsBackgroundWork(t *testing.T) {
	const idle = 6 * 250 * time.Millisecond // six of the emulator's idle gaps
	const noWork = 15 * time.Millisecond

	off := startEnv(t, []string{"KMSBRIDGE_EMULATOR_KEY_CACHE="}, "--wrapping-key-pool", "RSA_2048=2", "--wrapping-key-pool-refill=false")
	takeWrappingKeys(t, client(off.url), 2)
	before := cpuNanos(t, off.cmd.Process.Pid)
	time.Sleep(idle)
	used := time.Duration(cpuNanos(t, off.cmd.Process.Pid) - before)
	t.Logf("idle emulator without refills: %v of CPU in %v", used, idle)
	if used > noWork {
		t.Errorf("with --wrapping-key-pool-refill=false the idle emulator used %v of CPU in %v after its pool was taken, want under %v: it is generating in the background", used, idle, noWork)
	}

	// Without the suite's test key cache (make test sets it): refilling
	// from cached pairs costs next to no CPU, so this control would wait
	// for work that never shows.
	on := startEnv(t, []string{"KMSBRIDGE_EMULATOR_KEY_CACHE="}, "--wrapping-key-pool", "RSA_2048=2")
	takeWrappingKeys(t, client(on.url), 2)
	before = cpuNanos(t, on.cmd.Process.Pid)
	deadline := time.Now().Add(60 * time.Second)
	for time.Duration(cpuNanos(t, on.cmd.Process.Pid)-before) <= noWork {
		if time.Now().After(deadline) {
			t.Fatalf("with refills on the emulator did not refill its pool in 60s: the control does not work, so the check above proves nothing")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
