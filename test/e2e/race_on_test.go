//go:build race

package e2e

// raceBuild: these tests run with -race, so the kmsbridge binary they start
// is built with it too, and a data race in the CLI (exit status 66) fails
// the test that ran it. The emulator, tested on its own, is not.
const raceBuild = true
