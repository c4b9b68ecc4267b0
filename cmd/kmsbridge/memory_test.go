package main

import (
	"os"
	"runtime/debug"
	"testing"
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
