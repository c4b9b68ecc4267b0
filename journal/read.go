package journal

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// maxArchive bounds one journal archive read by ReadToken: the archive
// keeps every compacted entry, so it may outgrow the live journal.
const maxArchive = 4 * safefile.MaxJournal

// maxLine bounds one journal line, as Open's scanner does.
const maxLine = 1 << 20

// Read is one journal of a token on this host as ReadToken found it.
type Read struct {
	// FileName is the journal's file name (Scope.FileName of its scope),
	// without .archive.
	FileName string
	// Paths are the files read: the journal and its archive, if any.
	Paths []string
	// Entries are the entries keep chose, the archive's first.
	Entries []Entry
}

// MaxJournalsPerToken bounds how many journals ReadToken reads for one
// token: one per cloud target (an AWS Region and account, a Google project
// and location, an Azure vault), far more than one host's ceremonies use.
const MaxJournalsPerToken = 1024

// ReadToken reads, without taking any lock and without changing
// anything, every journal of the token with serial in dir, and each one's
// archive, keeping the entries keep chooses: for status, which reports
// and must not write (Open would cut a torn line, compact, adopt). Each
// file is opened as input like any other (a regular file, bounded), read
// line by line; a torn last line (a run killed mid-write) is skipped, a
// line that is not an entry fails that journal. A dir that does not exist
// holds no journal. Problems with one journal do not stop the others:
// they are returned beside what could be read.
func ReadToken(ctx context.Context, dir, serial string, keep func(Entry) bool) ([]Read, []error) {
	if serial == "" {
		return nil, []error{fmt.Errorf("journals: no token serial to find them by")}
	}
	prefix := strings.TrimSuffix(Scope{TokenSerial: serial}.FileName(), ".journal")
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("journals in %s: %w", dir, err)}
	}
	var (
		out  []Read
		errs []error
		n    int
	)
	for _, de := range names {
		name := de.Name()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".journal") {
			continue
		}
		// Each journal is bounded; so is how many are read, so a state
		// directory filled with journals cannot make a reader's work grow
		// without end.
		if n++; n > MaxJournalsPerToken {
			return nil, []error{fmt.Errorf("journals in %s: more than %d for token %s (one per cloud target: Region and account, project, vault); move the journals of targets no longer in use to another directory and run again", dir, MaxJournalsPerToken, serial)}
		}
		r := Read{FileName: name}
		for _, f := range []struct {
			path string
			max  int64
		}{{filepath.Join(dir, name+".archive"), maxArchive}, {filepath.Join(dir, name), safefile.MaxJournal}} {
			entries, err := readEntries(ctx, f.path, f.max, keep)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.Paths = append(r.Paths, f.path)
			r.Entries = append(r.Entries, entries...)
		}
		if len(r.Paths) > 0 {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FileName < out[j].FileName })
	return out, errs
}

// readEntries reads the journal file at path, read-only and bounded,
// keeping the entries keep chooses.
func readEntries(ctx context.Context, path string, max int64, keep func(Entry) bool) ([]Entry, error) {
	f, err := safefile.Open("journal", path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(safefile.Limit(ctxReader{ctx, f}, "journal", path, max))
	sc.Buffer(make([]byte, 64*1024), maxLine)
	var (
		out     []Entry
		line    int
		pending error // a bad line is forgiven only as the last one (torn)
	)
	for sc.Scan() {
		line++
		if pending != nil {
			return nil, pending
		}
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			pending = fmt.Errorf("journal %s line %d is not a journal entry (%v): move the file aside; kmsbridge then finds earlier keys by their tags and labels", path, line, err)
			continue
		}
		if keep == nil || keep(e) {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return out, nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	f   *os.File
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}
