//go:build race

package e2e

// raceBuild: these tests run with -race, so the binaries they start are
// built with it too, and a data race in the CLI (exit status 66) fails the
// test that ran it.
const raceBuild = true
