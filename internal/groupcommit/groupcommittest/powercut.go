// Package groupcommittest models power cuts for the tests of the files
// that share fsyncs through internal/groupcommit (the journal and the
// ceremony record).
package groupcommittest

import (
	"os"
	"sync"
	"time"
)

// PowerCut models what a power cut keeps of a file: the bytes that were
// in it when an fsync that has since returned began. Its Sync is the
// file's sync hook.
type PowerCut struct {
	mu      sync.Mutex
	durable int64
	syncs   int
}

// Sync stands for f's fsync: it notes f's size, waits as a slow disk's
// fsync does (long beside an append, signing included, under -race too,
// so that appenders overlap it), syncs f, and only then counts that size
// as durable.
func (pc *PowerCut) Sync(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	time.Sleep(5 * time.Millisecond)
	if err := f.Sync(); err != nil {
		return err
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.syncs++
	if st.Size() > pc.durable {
		pc.durable = st.Size()
	}
	return nil
}

// Durable is how many bytes of the file a power cut now would keep.
func (pc *PowerCut) Durable() int64 {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.durable
}

// Syncs is how many fsyncs there were.
func (pc *PowerCut) Syncs() int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.syncs
}
