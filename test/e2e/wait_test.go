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

// noHangKMSTimeout is the --kms-timeout of runs in which no KMS call is
// made to hang: it only bounds a run gone wrong, so it sits far above any
// healthy call at any load (kmsbridge's own default is 30s).
const noHangKMSTimeout = "2m"

// hangKMSTimeout is the --kms-timeout of runs in which an injected Hang
// must time out (the emulator holds a hung call until kmsbridge gives up,
// see hangForever). It scales with what it waits for: baseline is how
// long the same command took without faults, measured at the machine's
// current load. One KMS call is a small part of a whole command, so three
// times the whole command keeps every healthy call of the same run well
// below the timeout while the load grows (the scenarios run side by
// side), and a hung call still ends in seconds on a quiet machine.
func hangKMSTimeout(baseline time.Duration) string {
	return max(2*time.Second, 3*baseline).Round(100 * time.Millisecond).String()
}

// hangForever is the HangMillis of an injected Hang: the emulator's
// maximum (10 minutes), longer than any --kms-timeout the suite gives, so
// the hang always ends by kmsbridge giving up, never by the emulator
// answering late.
const hangForever = 600_000
