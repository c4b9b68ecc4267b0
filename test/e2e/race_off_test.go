//go:build !race

package e2e

// raceBuild: these tests run without -race; the binaries are built without.
const raceBuild = false
