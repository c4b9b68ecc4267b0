package e2e

import (
	"testing"
	"time"
)

// waitUntil polls cond until it holds, instead of sleeping a fixed time
// for something to happen: a test then takes as long as the thing it
// waits for, on a quiet machine or a loaded one. limit bounds a wait for
// something that never happens; give it room (a multiple of the time the
// thing should take), since it only ends a failing test.
func waitUntil(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for poll := 20 * time.Millisecond; !cond(); poll = min(2*poll, 500*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(poll)
	}
}
