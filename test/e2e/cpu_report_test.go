package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The CPU report: with KMSBRIDGE_E2E_CPU_REPORT=FILE, TestMain writes to
// FILE the CPU time (user+system) of the processes each top-level test
// ran through the harness (kmsbridge runs, the AWS and Google
// emulators), most first, and the test binary's own (with
// KMSBRIDGE_E2E_RACE_CLI=1 to FILE.race-cli). Tests run
// in parallel, so wall times say little about what a test costs; this is
// how BENCHMARKS.md's per-test figures are measured.
const cpuReportEnv = "KMSBRIDGE_E2E_CPU_REPORT"

type cpuUse struct {
	user, sys time.Duration
	procs     int
}

var (
	cpuMu     sync.Mutex
	cpuByTest = map[string]*cpuUse{}
	cpuByWhat = map[string]*cpuUse{}
)

// chargeCPU adds what the ended process ps (a run of what: a program and
// its command) used to t's top-level test and to what.
func chargeCPU(t testing.TB, what string, ps *os.ProcessState) {
	if ps == nil {
		return
	}
	top, _, _ := strings.Cut(t.Name(), "/")
	cpuMu.Lock()
	defer cpuMu.Unlock()
	for _, k := range []struct {
		m   map[string]*cpuUse
		key string
	}{{cpuByTest, top}, {cpuByWhat, what}} {
		u := k.m[k.key]
		if u == nil {
			u = &cpuUse{}
			k.m[k.key] = u
		}
		u.user += ps.UserTime()
		u.sys += ps.SystemTime()
		u.procs++
	}
}

// command names a run for the report: the program and its first word
// that is not a flag.
func command(name string, args []string) string {
	what := filepath.Base(name)
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return what + " " + a
		}
	}
	return what
}

// writeCPUReport writes the report when KMSBRIDGE_E2E_CPU_REPORT names a
// file.
func writeCPUReport() {
	path := os.Getenv(cpuReportEnv)
	if path == "" {
		return
	}
	if os.Getenv("KMSBRIDGE_E2E_RACE_CLI") == "1" {
		path += ".race-cli" // make test's second run of this package
	}
	cpuMu.Lock()
	defer cpuMu.Unlock()
	var total time.Duration
	for _, u := range cpuByTest {
		total += u.user + u.sys
	}
	var b strings.Builder
	table(&b, "Test", cpuByTest)
	b.WriteString("\n")
	table(&b, "Program", cpuByWhat)
	b.WriteString("\n")
	var self syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	selfCPU := time.Duration(self.Utime.Nano() + self.Stime.Nano())
	fmt.Fprintf(&b, "| all tests' processes | %.1f | |\n| the test binary itself | %.1f | |\n", total.Seconds(), selfCPU.Seconds())
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", cpuReportEnv, err)
	}
}

// table writes m as a Markdown table, most CPU first.
func table(b *strings.Builder, what string, m map[string]*cpuUse) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.SortFunc(names, func(x, y string) int {
		return int((m[y].user + m[y].sys) - (m[x].user + m[x].sys))
	})
	fmt.Fprintf(b, "| %s | CPU-s (user+sys) of its processes | processes |\n|---|---|---|\n", what)
	for _, n := range names {
		u := m[n]
		fmt.Fprintf(b, "| %s | %.1f (%.1f+%.1f) | %d |\n", n, (u.user + u.sys).Seconds(), u.user.Seconds(), u.sys.Seconds(), u.procs)
	}
}
