package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// adoptedSuffix is appended to the name of a journal adoptLegacy took over:
// the file stays, byte for byte, as evidence.
const adoptedSuffix = ".adopted"

// adoptLegacy takes over the journals an earlier kmsbridge kept for this
// scope under an older name (scope.Legacy: a target without the account).
// Their entries are appended to j's file, which is locked and not yet
// loaded, and the old file is renamed to <name>.adopted, so a re-run of an
// interrupted command finishes it, never creating twice, whichever version
// began it. It runs once per old file: afterwards only the adopted name
// exists. The old file is locked while it is read and renamed, so an
// earlier kmsbridge still running on it is waited for. A torn last line
// stays in the renamed file; an interrupted compaction's complete new
// journal (<name>.compacting) is taken instead of the live file.
func (j *Journal) adoptLegacy(ctx context.Context, dir string, scope Scope) error {
	for _, t := range scope.Legacy {
		if t == "" || t == scope.Target {
			continue
		}
		old := filepath.Join(dir, Scope{TokenSerial: scope.TokenSerial, Target: t}.FileName())
		if old == j.path {
			continue
		}
		if _, err := os.Lstat(old); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := j.adoptOne(ctx, old); err != nil {
			return fmt.Errorf("journal %s of an earlier kmsbridge (its scope named no account) could not be taken over into %s: %w; nothing was changed. Move it aside only once `kmsbridge status` shows nothing unfinished", old, j.path, err)
		}
		j.Adopted = append(j.Adopted, old)
	}
	return nil
}

func (j *Journal) adoptOne(ctx context.Context, old string) error {
	f, err := safefile.OpenFile("journal", old, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := waitLock(ctx, f); err != nil {
		return err
	}
	// Still there under its name once locked (another kmsbridge may have
	// taken it over while this one waited)?
	if fi, err := os.Lstat(old); err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	data, err := safefile.ReadAll(context.Background(), io.NewSectionReader(f, 0, safefile.MaxJournal+1), "journal", old, safefile.MaxJournal)
	if err != nil {
		return err
	}
	compacting := old + ".compacting"
	if c, err := safefile.Read("interrupted journal compaction", compacting, safefile.MaxJournal); err == nil {
		data = c
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1] // complete lines only
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var e Entry
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("line %d is not a journal entry (%v)", i+1, err)
		}
	}
	if len(data) > 0 {
		if _, err := j.f.Write(data); err != nil {
			return err
		}
		if err := j.f.Sync(); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(compacting); err == nil {
		if err := os.Rename(compacting, compacting+adoptedSuffix); err != nil {
			return err
		}
	}
	if err := os.Rename(old, old+adoptedSuffix); err != nil {
		return err
	}
	return safefile.SyncDir(filepath.Dir(old))
}
