package opencryptoki_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// TestConcurrentGenerationReadsEveryKeyBack generates token keys from
// several goroutines at once, each on a pooled session, as a bulk run
// does, and checks every key was read back and described.
func TestConcurrentGenerationReadsEveryKeyBack(t *testing.T) {
	tk := openOCK(t)
	const workers, each = 4, 60
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				k, err := tk.GenerateAfterSearch(fmt.Sprintf("conc-%d-%d", w, i), hsm.AES256(), false)
				if err == nil && (k.Label != fmt.Sprintf("conc-%d-%d", w, i) || k.ValueLen != 32) {
					err = fmt.Errorf("described as %q, %d bytes", k.Label, k.ValueLen)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d key %d: %w", w, i, err)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 3 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Errorf("%d of %d concurrent generations failed", n, workers*each)
	}
}
