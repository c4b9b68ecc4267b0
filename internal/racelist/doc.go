// Package racelist holds packages.txt, the root module's packages whose
// unit tests `make test` runs with the race detector, and the test that
// keeps it complete: a package whose code, tests included, starts a
// goroutine, uses sync, serves HTTP or gRPC, or runs parallel tests must
// be listed, so new concurrency cannot escape the race detector. The
// other packages' tests run without -race, which costs them a third to
// ten times the CPU and a second, race-instrumented build of everything
// they link.
package racelist
