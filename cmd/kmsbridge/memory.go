package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// gcPercent is the heap growth, in percent of the live heap, at which Go
// collects (GOGC): 50 instead of Go's 100. A bulk run's live heap is small
// and grows with its keys (about 7 KiB a key, mostly the journal's entries
// of the run, which the exactly-once checks read back); at 100 the heap
// reaches twice that before a collection, and SoftHSM2's copy of the keys
// and the binary's own pages come on top. At 50 a 1000-key run peaks 3 to
// 6 MiB lower for twice as many collections, which took 1 to 2% of the
// run's CPU at 100 (GODEBUG=gctrace=1; BENCHMARKS.md, run H).
const gcPercent = 50

// The soft memory limit (followHeap): the heap gcPercent allows, and
// softLimitSpans more for the part of the heap's pages its objects leave
// unused, what the runtime holds beside the heap (goroutine stacks, the
// collector's metadata), and softLimitMargin; never below softLimitFloor.
const (
	softLimitSpans  = 0.05
	softLimitMargin = 1 << 20
	softLimitFloor  = 16 << 20
)

// tuneMemory sets gcPercent and a soft memory limit that follows the live
// heap (followHeap), unless the operator chose with GOGC or GOMEMLIMIT,
// which then decide as Go documents.
func tuneMemory() {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return
	}
	debug.SetGCPercent(gcPercent)
	followHeap()
}

// followHeap sets, after every collection, Go's soft memory limit to what
// gcPercent lets the heap grow to from the live heap just measured, plus
// what the runtime holds beside the heap and the margins above
// (softLimit). GOGC alone bounds the heap's objects, not
// the free pages the heap keeps after a peak: a 1000-key bulk run held
// about 5 MiB of them, given back to the system only slowly (BENCHMARKS.md,
// run I). Against a limit Go gives them back as it nears it. The limit
// follows the live heap, so it never stands below what a run needs: a fixed
// limit under a large run's live heap would make Go collect without pause.
// It is set again after each collection, from the finalizer of an object
// made for that.
func followHeap() {
	s := &gcSentinel{}
	runtime.SetFinalizer(s, func(*gcSentinel) {
		debug.SetMemoryLimit(softLimit(readHeap()))
		followHeap()
	})
}

// gcSentinel is an object nothing keeps: its finalizer runs after the next
// collection. It holds a pointer, so that it is not packed with other
// small objects (whose finalizers may never run).
type gcSentinel struct{ _ *byte }

// heapState is what softLimit reads of the runtime, in bytes.
type heapState struct {
	// live is the heap's live objects at the last collection; beside is
	// what the runtime holds that is not heap: stacks, the collector's
	// metadata, its own structures.
	live, beside uint64
}

var heapMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
}

func readHeap() heapState {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	heap := v(2) + v(3) + v(4) + v(5)
	h := heapState{live: v(0)}
	if total := v(1); total > heap {
		h.beside = total - heap
	}
	return h
}

// softLimit is the memory limit for h: the heap gcPercent allows,
// softLimitSpans more, what the runtime holds beside the heap, and
// softLimitMargin, at least softLimitFloor.
func softLimit(h heapState) int64 {
	goal := float64(h.live) * (1 + gcPercent/100.0) * (1 + softLimitSpans)
	limit := goal + float64(h.beside) + softLimitMargin
	if limit > math.MaxInt64/2 {
		return math.MaxInt64
	}
	return max(softLimitFloor, int64(limit))
}
