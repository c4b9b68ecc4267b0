package ceremony

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// LoadKeys reads a list of keys to import, with the fields of a ceremony
// file's keys, from a YAML file (a list, as under keys:) or a CSV file
// (.csv: a header row naming the fields, one key per row), and validates
// every key as a ceremony file's keys are validated, plus uniqueness of
// labels, aliases and KMS key IDs. Keys get no CKA_WRAP_WITH_TRUSTED.
// Every problem is reported, with its line (YAML) or row (CSV); the error
// matches kmsimport.ErrInvalidInput.
func LoadKeys(path string, now time.Time) (*File, error) {
	data, err := safefile.Read("--from", path, safefile.MaxKeyList)
	if err != nil {
		return nil, err
	}
	var (
		f      *File
		errs   Errors
		broken []string
	)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		f, errs, broken = parseKeyCSV(path, data)
	case ".yaml", ".yml":
		f, errs, broken = parseKeyYAML(path, data)
	default:
		return nil, Errors{{File: path, Msg: "a key list is a .csv file (a header row of field names, one key per row) or a .yaml/.yml file (a list of keys, as under keys: in a ceremony file): rename it or convert it"}}
	}
	if f != nil {
		noTrusted := false
		f.DualControl.WrapWithTrusted = &noTrusted
		c := &checker{f: f}
		if len(f.Keys) == 0 {
			c.add("keys", "the list has no keys: give at least one")
		}
		for i := range f.Keys {
			f.kmsCloud().validateKey(c, f, i, now)
			if len(f.Keys[i].Targets) > 0 {
				c.add(fmt.Sprintf("keys[%d].targets", i), "is for ceremony files: import --from imports into AWS KMS only; run the other clouds' targets with kmsbridge ceremony run, or import --cloud gcp|azure")
			}
			if f.Keys[i].AWS != nil {
				c.add(fmt.Sprintf("keys[%d].aws", i), "is for ceremony files: import --from imports every key into AWS KMS; remove it")
			}
		}
		f.validateUnique(c)
		errs = append(errs, c.errs.outside(broken)...)
	}
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return f, nil
}

func parseKeyYAML(name string, data []byte) (*File, Errors, []string) {
	sum := digestOf(data)
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "the key list is empty: write a list of keys (- hsm-label: ...), as under keys: in a ceremony file"}}, nil
		}
		return nil, Errors{syntaxError(name, err)}, nil
	}
	w := &walker{file: name, lines: map[string]int{}, atLine: map[int]string{}}
	if len(root.Content) != 1 {
		return nil, Errors{{File: name, Msg: "the key list is empty"}}, nil
	}
	w.walk(root.Content[0], reflect.TypeOf([]Key{}), "keys")
	if len(w.errs) > 0 && root.Content[0].Kind != yaml.SequenceNode {
		return nil, w.errs, nil
	}
	f := &File{source: name, lines: w.lines, digest: sum}
	if serr := w.strictDecode(data, &f.Keys); serr != nil {
		return nil, append(w.errs, serr), nil
	}
	return f, w.errs, w.broken
}

// csvFields are the CSV columns, the YAML names of Key's fields. tags is
// NAME=VALUE pairs separated by ";", replica-regions Regions separated by
// ";", and the yes/no fields true or false.
func csvFields() []string {
	var out []string
	for _, n := range fieldNames(reflect.TypeOf(Key{})) {
		if n != "targets" && n != "aws" { // a list of clouds has no CSV form; every key goes to AWS
			out = append(out, n)
		}
	}
	return out
}

func parseKeyCSV(name string, data []byte) (*File, Errors, []string) {
	f := &File{source: name, lines: map[string]int{}, digest: digestOf(data)}
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, Errors{{File: name, Msg: "the key list is empty: the first row names the columns (" + strings.Join(csvFields(), ", ") + ")"}}, nil
		}
		return nil, Errors{csvError(name, err)}, nil
	}
	var (
		errs   Errors
		broken []string
	)
	known := fieldsOf(reflect.TypeOf(Key{}))
	delete(known, "targets")
	cols := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		header[i] = h
		switch _, ok := known[h]; {
		case isPINName(h):
			errs = append(errs, &Error{File: name, Line: 1, Field: h, Msg: "PINs never go in a key list: remove the column"})
		case !ok:
			errs = append(errs, &Error{File: name, Line: 1, Field: h, Msg: fmt.Sprintf("unknown column %q: the columns are %s", h, strings.Join(csvFields(), ", "))})
		default:
			if j, dup := cols[h]; dup {
				errs = append(errs, &Error{File: name, Line: 1, Field: h, Msg: fmt.Sprintf("column %q is given twice (columns %d and %d): keep one", h, j+1, i+1)})
			}
			cols[h] = i
		}
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, append(errs, csvError(name, err)), nil
		}
		line, _ := r.FieldPos(0)
		i := len(f.Keys)
		path := fmt.Sprintf("keys[%d]", i)
		f.lines[path] = line
		var k Key
		for col, h := range header {
			v := strings.TrimSpace(rec[col])
			if v == "" {
				continue
			}
			field := path + "." + h
			fv := reflect.ValueOf(&k).Elem().FieldByName(goFieldOf(h))
			switch {
			case h == "tags":
				k.Tags = map[string]string{}
				for _, pair := range strings.Split(v, ";") {
					n, val, ok := strings.Cut(pair, "=")
					if !ok || strings.TrimSpace(n) == "" {
						errs = append(errs, &Error{File: name, Line: line, Field: field, Msg: fmt.Sprintf("%q is not NAME=VALUE: write tags as NAME=VALUE pairs separated by ;", pair)})
						continue
					}
					k.Tags[strings.TrimSpace(n)] = strings.TrimSpace(val)
				}
			case fv.Kind() == reflect.Bool, fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.Bool:
				b, err := strconv.ParseBool(v)
				if err != nil {
					errs = append(errs, &Error{File: name, Line: line, Field: field, Msg: fmt.Sprintf("must be true or false, not %q", kmsimport.Excerpt(v))})
					broken = append(broken, field)
					continue
				}
				if fv.Kind() == reflect.Pointer {
					fv.Set(reflect.ValueOf(&b))
				} else {
					fv.SetBool(b)
				}
			case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
				// A list column (replica-regions): values separated by ;.
				var items []string
				for _, it := range strings.Split(v, ";") {
					items = append(items, strings.TrimSpace(it))
				}
				fv.Set(reflect.ValueOf(items))
			case fv.Kind() == reflect.String:
				fv.SetString(v)
			default:
				errs = append(errs, &Error{File: name, Line: line, Field: field, Msg: "this field cannot be given in a CSV key list: use a YAML key list"})
				broken = append(broken, field)
			}
		}
		f.Keys = append(f.Keys, k)
	}
	return f, errs, broken
}

// csvError explains a row encoding/csv could not read, with the line it
// starts on (a quote left open runs to the end of the file).
func csvError(name string, err error) *Error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return &Error{File: name, Msg: "not valid CSV: " + err.Error()}
	}
	msg := "not valid CSV: " + pe.Err.Error()
	switch {
	case errors.Is(pe.Err, csv.ErrQuote):
		msg = fmt.Sprintf(`not valid CSV: a quoted field on line %d is never closed, or a quote inside it is not doubled: close the quote, and write each quote inside a quoted field as ""`, pe.StartLine)
	case errors.Is(pe.Err, csv.ErrBareQuote):
		msg += `: put the field in quotes and write each quote inside it as ""`
	case errors.Is(pe.Err, csv.ErrFieldCount):
		msg += ": give every row as many fields as the header row has columns"
	}
	return &Error{File: name, Line: pe.StartLine, Msg: msg}
}

// goFieldOf is the Go name of Key's field with YAML name yamlName.
func goFieldOf(name string) string {
	t := reflect.TypeOf(Key{})
	for i := 0; i < t.NumField(); i++ {
		if yamlName(t.Field(i)) == name {
			return t.Field(i).Name
		}
	}
	return ""
}

// digestOf is the lowercase hex SHA-256 of a file's bytes.
func digestOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
