package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// retention is how long the entries of a finished attempt stay in the live
// journal; compactAbove is how many entries the live journal may hold
// before Open moves older finished ones to the archive. Variables so that
// tests can use small ones.
var (
	retention    = 90 * 24 * time.Hour
	compactAbove = 10000
)

// archivePath and compactingPath are the archive, where compaction moves
// entries (kept as evidence, never read by kmsbridge), and the complete new
// journal a compaction writes before it rewrites the live one.
func (j *Journal) archivePath() string    { return j.path + ".archive" }
func (j *Journal) compactingPath() string { return j.path + ".compacting" }

// finishCompaction completes a compaction a crash interrupted: when the
// complete new journal (<file>.compacting) exists, the live journal may be
// the old one or half rewritten, so it is rewritten from it. Callers hold
// the lock.
func (j *Journal) finishCompaction() error {
	data, err := safefile.Read("interrupted journal compaction", j.compactingPath(), safefile.MaxJournal)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("journal %s: an interrupted compaction left %s, which cannot be read: %w", j.path, j.compactingPath(), err)
	}
	return j.rewrite(data)
}

// rewrite replaces the live journal's content with data, in place (the
// lock is on the file, so the file stays the same), then removes
// <file>.compacting.
func (j *Journal) rewrite(data []byte) error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("journal %s: compaction: %w", j.path, err)
	}
	if _, err := j.f.Write(data); err != nil {
		return fmt.Errorf("journal %s: compaction: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal %s: compaction: %w", j.path, err)
	}
	if err := os.Remove(j.compactingPath()); err != nil {
		return fmt.Errorf("journal %s: compaction: %w", j.path, err)
	}
	return safefile.SyncDir(filepath.Dir(j.path))
}

// compact moves the entries of attempts that finished (an outcome other
// than unknown, or a note) before now - retention to the archive, when the
// live journal holds more than compactAbove entries; every entry of an
// unfinished attempt stays, however old. It returns how many entries
// moved. Callers hold the lock.
//
// Crash safety: the moved entries are appended to the archive and fsync'd
// first (a crash here leaves them in both; the archive may hold a copy
// twice); then the complete new journal is written to
// <file>.compacting.tmp, fsync'd and renamed to <file>.compacting, which
// therefore exists only whole; then the live journal is rewritten in place
// and <file>.compacting removed. Open finishes a compaction that
// <file>.compacting shows was interrupted.
func (j *Journal) compact(now time.Time) (int, error) {
	if len(j.entries) <= compactAbove {
		return 0, nil
	}
	cutoff := now.Add(-retention)
	newest := map[string]time.Time{}
	for _, e := range j.entries {
		if e.Time.After(newest[e.Attempt]) {
			newest[e.Attempt] = e.Time
		}
	}
	var keep, move bytes.Buffer
	var kept []Entry
	moved := 0
	for _, e := range j.entries {
		line, err := json.Marshal(e)
		if err != nil {
			return 0, err
		}
		line = append(line, '\n')
		if newest[e.Attempt].Before(cutoff) && (e.Kind == KindNote || j.settled[e.Attempt]) {
			move.Write(line)
			moved++
			continue
		}
		keep.Write(line)
		kept = append(kept, e)
	}
	if moved == 0 {
		return 0, nil
	}
	if err := appendSynced(j.archivePath(), move.Bytes()); err != nil {
		return 0, fmt.Errorf("journal %s: compaction: archive: %w", j.path, err)
	}
	tmp := j.compactingPath() + ".tmp"
	if err := writeSynced(tmp, keep.Bytes()); err != nil {
		return 0, fmt.Errorf("journal %s: compaction: %w", j.path, err)
	}
	if err := os.Rename(tmp, j.compactingPath()); err != nil {
		return 0, fmt.Errorf("journal %s: compaction: %w", j.path, err)
	}
	if err := safefile.SyncDir(filepath.Dir(j.path)); err != nil {
		return 0, fmt.Errorf("journal %s: compaction: %w", j.path, err)
	}
	if err := j.rewrite(keep.Bytes()); err != nil {
		return 0, err
	}
	j.entries, j.firstOutcome, j.settled, j.intentsOf, j.progressOf = nil, nil, nil, nil, nil
	for _, e := range kept {
		j.keep(e)
	}
	return moved, nil
}

// appendSynced appends data to path and fsyncs it; writeSynced replaces
// path's content with data and fsyncs it. Both create path 0600.
func appendSynced(path string, data []byte) error {
	return fileSynced(path, data, os.O_APPEND)
}

func writeSynced(path string, data []byte) error {
	return fileSynced(path, data, os.O_TRUNC)
}

// writeNew creates path 0600 (never over an existing file or through a
// symlink) holding data, fsync'd.
func writeNew(path string, data []byte) error {
	return fileSynced(path, data, os.O_EXCL)
}

// fileSynced opens path as safefile.OpenFile does (never through a
// symlink, only a regular file), so a journal archive linked elsewhere
// cannot be made to write there.
func fileSynced(path string, data []byte, mode int) error {
	f, err := safefile.OpenFile("journal file", path, os.O_WRONLY|os.O_CREATE|mode, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
