// Package emukeystest gives a package's tests one test key cache (see
// package internal/emukeys) for all the emulators they start: make test's,
// named by KMSBRIDGE_EMULATOR_KEY_CACHE, or, when a package's tests run
// alone, one made for that run and removed after it. Each emulator still
// never hands out a pair twice, but the pairs are generated once per run
// instead of once per emulator (RSA-4096 costs seconds of CPU a pair,
// more under -race).
package emukeystest

import (
	"fmt"
	"os"
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
)

// Main runs a package's tests, from its TestMain, with
// KMSBRIDGE_EMULATOR_KEY_CACHE naming a test key cache: the one already
// named, or a fresh directory removed when the tests end.
func Main(m *testing.M) {
	if os.Getenv(emukeys.EnvVar) != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "kmsbridge-test-keys-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "test key cache:", err)
		os.Exit(1)
	}
	os.Setenv(emukeys.EnvVar, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Source is a Source over the cache Main set up, for one emulator: its own
// order, so that it hands out each cached pair at most once.
func Source(tb testing.TB) *emukeys.Source {
	tb.Helper()
	dir := os.Getenv(emukeys.EnvVar)
	if dir == "" {
		tb.Fatalf("%s is not set: call emukeystest.Main from the package's TestMain", emukeys.EnvVar)
	}
	src, err := emukeys.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return src
}
