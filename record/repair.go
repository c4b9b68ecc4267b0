package record

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// ErrNothingToRepair means the record ends in a complete line.
var ErrNothingToRepair = errors.New("the record ends in a complete line: nothing to repair")

// Repaired says what Repair did.
type Repaired struct {
	// TornFile holds the torn bytes, kept as evidence.
	TornFile string
	// TornSha256 is the SHA-256 of the torn bytes, lowercase hex.
	TornSha256 string
	// TornBytes is their length.
	TornBytes int
	// Entry is the entry appended to say so.
	Entry Entry
}

// Repair mends a record whose last line is torn (cut short by a crash
// during a write): it copies the bytes after the last newline to
// <path>.torn-<UTC time> (0600, never overwriting), fsyncs that copy,
// cuts them from the record, and appends an entry (Command "record
// repair", Step "repair-torn-line") naming the evidence file and the torn
// bytes' SHA-256 and length. Only the last line is ever touched; a record
// with any other problem is refused, as Open refuses it. signer and
// signerKeyID sign the appended entry as Open's do.
func Repair(path string, now time.Time, signer crypto.Signer, signerKeyID []byte) (*Repaired, error) {
	f, err := safefile.OpenFile("ceremony record", path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("ceremony record: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("ceremony record %s: %w", path, err)
	}
	// Read what was opened and locked, not the name again.
	data, err := safefile.ReadAll(context.Background(), io.NewSectionReader(f, 0, safefile.MaxRecord+1), "ceremony record", path, safefile.MaxRecord)
	if err != nil {
		f.Close()
		return nil, err
	}
	if len(data) == 0 || data[len(data)-1] == '\n' {
		f.Close()
		return nil, ErrNothingToRepair
	}
	cut := bytes.LastIndexByte(data, '\n') + 1
	torn := data[cut:]
	if _, err := VerifyWith(bytes.NewReader(data[:cut]), VerifyOptions{AllowUnsigned: true}); err != nil {
		f.Close()
		return nil, fmt.Errorf("the record has problems other than its torn last line, so it does not verify and nothing was changed; check it with kmsbridge record verify: %w", err)
	}
	sum := sha256.Sum256(torn)
	evidence := fmt.Sprintf("%s.torn-%s", path, now.UTC().Format("20060102T150405Z"))
	ef, err := safefile.OpenFile("torn-line evidence", evidence, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_, err = ef.Write(torn)
		if err == nil {
			err = ef.Sync()
		}
		if cerr := ef.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = safefile.SyncDir(filepath.Dir(evidence))
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("keep the torn bytes as evidence in %s: %w (nothing was changed in the record)", evidence, err)
	}
	if err := f.Truncate(int64(cut)); err != nil {
		f.Close()
		return nil, fmt.Errorf("cut the torn line from %s (its bytes are kept in %s): %w", path, evidence, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close() // releases the lock for Open
	w, err := Open(path, signer, signerKeyID)
	if err != nil {
		return nil, fmt.Errorf("the torn line was moved to %s, but the rest of the record does not verify: %w", evidence, err)
	}
	defer w.Close()
	e, err := w.Append(Entry{Command: "record repair", Step: "repair-torn-line", Inputs: map[string]string{},
		Outputs: map[string]string{"TornBytesFile": evidence, "TornBytesSha256": hex.EncodeToString(sum[:]), "TornBytesLength": strconv.Itoa(len(torn))},
		Outcome: OutcomeOK})
	if err != nil {
		return nil, fmt.Errorf("the torn line was moved to %s, but the entry saying so could not be appended: %w", evidence, err)
	}
	return &Repaired{TornFile: evidence, TornSha256: hex.EncodeToString(sum[:]), TornBytes: len(torn), Entry: e}, nil
}
