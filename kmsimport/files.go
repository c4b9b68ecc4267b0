package kmsimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// CheckNewFile fails unless path can be created: kmsbridge never
// overwrites a file, and checks this before it changes anything.
func CheckNewFile(flag, path string) error {
	if path == "" {
		return invalid("%s is required: the file to write", flag)
	}
	if _, err := os.Lstat(path); err == nil {
		return invalid("%s %s already exists: kmsbridge never overwrites a file; choose a new name or move the old file away", flag, path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return invalid("%s %s: %v", flag, path, err)
	}
	return checkDir(flag, path)
}

// CheckRecordFile fails unless path is a record kmsbridge can append to:
// an existing regular file, or a new file in a writable directory. It is
// checked before the first change, so the change is always recorded.
func CheckRecordFile(flag, path string) error {
	if path == "" {
		return nil
	}
	f, err := safefile.Open(flag, path)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	return checkDir(flag, path)
}

// checkDir fails unless path's directory exists and files can be created in it.
func checkDir(flag, path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return invalid("%s %s: the directory %s does not exist: create it (mkdir -p %s) or choose another path", flag, path, dir, dir)
	case err != nil:
		return invalid("%s %s: the directory %s: %v", flag, path, dir, err)
	case !st.IsDir():
		return invalid("%s %s: %s is not a directory: choose another path", flag, path, dir)
	}
	// Try it: permissions, ACLs and a read-only mount all show here, not
	// after the change this file is to record.
	probe, err := os.CreateTemp(dir, ".kmsbridge-write-check-*")
	if err != nil {
		return invalid("%s %s: cannot create files in %s (%v): choose a writable directory", flag, path, dir, errors.Unwrap(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// WriteNewFile writes v as indented JSON to a new file, mode 0600; it
// fails if the file exists.
func WriteNewFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := safefile.OpenFile("output file", path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// ReadStrict parses the JSON file at path (named by the flag what) into v,
// refusing anything but a regular file of at most safefile.MaxJSON bytes,
// unknown fields and trailing data; errors name the file and the field,
// quote at most an excerpt, and say what to do.
func ReadStrict(what, path string, v any) ([]byte, error) {
	b, err := safefile.Read(what, path, safefile.MaxJSON)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, invalid("%s %s is malformed: %s; use the file kmsbridge wrote, unedited", what, path, jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("%s %s is malformed: data after the JSON object; use the file kmsbridge wrote, unedited", what, path)
	}
	return b, nil
}

// jsonProblem says what is wrong with a JSON document in the file's terms,
// not the decoder's Go types, quoting at most an excerpt.
func jsonProblem(err error) string {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not valid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return fmt.Sprintf("the file holds a JSON %s, not an object", typ.Value)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s holds a JSON %s, which is the wrong type", Excerpt(typ.Field), typ.Value)
	case errors.Is(err, io.EOF):
		return "the file is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON is cut short"
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return "unknown field \"" + Excerpt(strings.Trim(f, `"`)) + "\" (a file from another tool or version, or edited by hand)"
	}
	// Other decoder errors (bad base64, a time that is not RFC 3339)
	// carry the bad value: quote only an excerpt of it.
	return Excerpt(msg)
}

// missing returns an error naming the first empty required field.
func missing(path string, fields ...struct {
	name  string
	empty bool
}) error {
	for _, f := range fields {
		if f.empty {
			return invalid("%s is malformed: field %s is missing or empty", path, f.name)
		}
	}
	return nil
}

type field = struct {
	name  string
	empty bool
}
