package kmsemu

import (
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/emukeys"
	"github.com/kmsbridge/kmsbridge/internal/emukeys/emukeystest"
)

// Every emulator of these tests takes its wrapping key pairs from one test
// key cache (newEnv; newEnvFreshKeys for the tests of generation itself).
func TestMain(m *testing.M) { emukeystest.Main(m) }

func testKeys(t *testing.T) *emukeys.Source { return emukeystest.Source(t) }
