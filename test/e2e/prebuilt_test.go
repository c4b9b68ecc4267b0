package e2e

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
)

// binEnv names a directory of binaries built once for the whole of `make
// test` (`go build -o DIR/ ./cmd/...`): TestMain links kmsbridge and the
// emulators from there instead of building them itself, which cost each
// run of this package a link of each (the cgo link of kmsbridge alone
// takes seconds of CPU). Unset, TestMain builds them as before.
const binEnv = "KMSBRIDGE_TEST_BIN_DIR"

// prebuilt links into dir the binaries of $KMSBRIDGE_TEST_BIN_DIR, if set.
// With KMSBRIDGE_E2E_RACE_CLI=1 the kmsbridge found there must have been
// built with -race, so that the race-detector run cannot silently test a
// plain build.
func prebuilt(dir string) error {
	from := os.Getenv(binEnv)
	if from == "" {
		return nil
	}
	for _, b := range []string{"kmsbridge", "kms-emulator", "gcp-kms-emulator"} {
		src, err := filepath.Abs(filepath.Join(from, b))
		if err != nil {
			return err
		}
		info, err := buildinfo.ReadFile(src)
		if err != nil {
			return fmt.Errorf("%s=%s: %s: %v (build it with go build -o %s/ ./cmd/...)", binEnv, from, b, err, from)
		}
		race := false
		for _, s := range info.Settings {
			if s.Key == "-race" && s.Value == "true" {
				race = true
			}
		}
		if want := os.Getenv("KMSBRIDGE_E2E_RACE_CLI") == "1" && b == "kmsbridge"; race != want {
			return fmt.Errorf("%s=%s: %s was built with -race=%v, want -race=%v (KMSBRIDGE_E2E_RACE_CLI=%q)", binEnv, from, b, race, want, os.Getenv("KMSBRIDGE_E2E_RACE_CLI"))
		}
		if err := os.Symlink(src, filepath.Join(dir, b)); err != nil {
			return err
		}
	}
	return nil
}
