package ceremony

import (
	"os"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary YAML to the ceremony file parser and
// validator: a file gives a File or a list of problems, never a panic.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("hsm: [unclosed\n"))
	f.Add([]byte("keys:\n  - hsm-label: \"a\\nb\"\n    tags: {aws:x: y}\n"))
	f.Add([]byte("hsm:\n  pin: \"1234\"\n"))
	f.Add([]byte("&a [*a, *a]"))
	now := time.Now()
	f.Fuzz(func(t *testing.T, data []byte) {
		file, errs, broken := parse("ceremony.yaml", data)
		if file != nil {
			_ = file.validate(now).outside(broken)
		}
		for _, e := range errs {
			_ = e.Error()
		}
	})
}
