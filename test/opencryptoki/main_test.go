package opencryptoki_test

import (
	"os"
	"testing"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

func TestMain(m *testing.M) {
	softhsm.RunOCKHelper()
	os.Exit(m.Run())
}
