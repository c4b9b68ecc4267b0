package kmsimport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
	return nil
}

// writeNewFile writes v as indented JSON to a new file, mode 0600; it
// fails if the file exists.
func writeNewFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
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

// readStrict parses the JSON file at path into v, refusing unknown fields
// and trailing data; errors name the file and the field.
func readStrict(path string, v any) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, invalid("%s: %v", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			msg = "unknown field " + f + " (a file from another tool or version, or edited by hand)"
		}
		return nil, invalid("%s is malformed: %s", path, msg)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("%s is malformed: data after the JSON object", path)
	}
	return b, nil
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
