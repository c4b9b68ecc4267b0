package main

import (
	"os"
	"runtime/debug"
)

// gcPercent is the heap growth, in percent of the live heap, at which Go
// collects (GOGC): 50 instead of Go's 100. A bulk run's live heap is small
// and grows with its keys (about 7 KiB a key, mostly the journal's entries
// of the run, which the exactly-once checks read back); at 100 the heap
// reaches twice that before a collection, and SoftHSM2's copy of the keys
// and the binary's own pages come on top. At 50 a 1000-key run peaks 3 to
// 6 MiB lower for twice as many collections, which took 1 to 2% of the
// run's CPU at 100 (GODEBUG=gctrace=1; BENCHMARKS.md, run H). A percentage, not a fixed memory limit: a limit below a large run's
// live heap would make Go collect without pause.
const gcPercent = 50

// tuneMemory sets gcPercent unless the operator chose with GOGC or
// GOMEMLIMIT, which then decide as Go documents.
func tuneMemory() {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return
	}
	debug.SetGCPercent(gcPercent)
}
