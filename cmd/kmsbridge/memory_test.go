package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestTuneMemory: kmsbridge collects at gcPercent unless the operator set
// GOGC or GOMEMLIMIT, which then decide.
func TestTuneMemory(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	for _, tt := range []struct {
		env  string
		want int
	}{{"", gcPercent}, {"GOGC", 100}, {"GOMEMLIMIT", 100}} {
		debug.SetGCPercent(100)
		for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
			if k == tt.env {
				t.Setenv(k, "100")
			} else if v, ok := os.LookupEnv(k); ok {
				t.Setenv(k, v)
				os.Unsetenv(k)
			}
		}
		tuneMemory()
		if got := debug.SetGCPercent(100); got != tt.want {
			t.Errorf("with %q set: GC percent %d, want %d", tt.env, got, tt.want)
		}
	}
}

// TestSoftLimitFollowsTheLiveHeap: the soft memory limit is the heap
// gcPercent allows from the live heap (and 5% for its pages' unused part), plus what the runtime
// holds beside the heap and a margin, never under the floor; so it grows
// with a run's live heap instead of standing under it.
func TestSoftLimitFollowsTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		h    heapState
		want int64
	}{
		{heapState{live: 1 * mib, beside: 4 * mib}, softLimitFloor},
		{heapState{live: 10 * mib, beside: 6 * mib}, int64(10*mib*1.5*1.05) + 6*mib + softLimitMargin},
		{heapState{live: 100 * mib, beside: 10 * mib}, int64(100*mib*1.5*1.05) + 10*mib + softLimitMargin},
		{heapState{live: math.MaxUint64 / 2}, math.MaxInt64},
	} {
		if got := softLimit(tt.h); got != tt.want {
			t.Errorf("softLimit(%+v) = %d, want %d", tt.h, got, tt.want)
		}
	}
}

// TestFollowHeapSetsTheLimitAfterACollection: with tuneMemory's defaults a
// collection leaves a memory limit set (Go's default is none, MaxInt64),
// at least the floor and above the live heap.
func TestFollowHeapSetsTheLimitAfterACollection(t *testing.T) {
	oldPercent, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	defer func() { debug.SetGCPercent(oldPercent); debug.SetMemoryLimit(oldLimit) }()
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Setenv(k, v)
			os.Unsetenv(k)
		}
	}
	tuneMemory()
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) == math.MaxInt64 {
		if time.Now().After(deadline) {
			t.Fatal("no memory limit set 10 s after collections began")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got, live := debug.SetMemoryLimit(-1), readHeap().live; got < softLimitFloor || uint64(got) <= live {
		t.Errorf("memory limit %d, want at least %d and above the live heap %d", got, softLimitFloor, live)
	}
}
