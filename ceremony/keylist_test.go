package ceremony

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func writeList(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const csvHeader = "hsm-label,generate,key-spec,key-usage,alias,tags,wrapping-algorithm,wrapping-key-spec,valid-to,no-expiry\n"

func TestLoadKeysCSVAndYAMLGiveTheSameKeys(t *testing.T) {
	csvPath := writeList(t, "keys.csv", csvHeader+
		"# tenant keys\n"+
		"tenant-1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/tenant-1,owner=t1;tier=gold,RSAES_OAEP_SHA_256,RSA_4096,2027-01-01,\n"+
		"tenant-2,false,HMAC_256,GENERATE_VERIFY_MAC,alias/tenant-2,,RSAES_OAEP_SHA_256,RSA_4096,,true\n")
	yamlPath := writeList(t, "keys.yaml", `- hsm-label: tenant-1
  generate: true
  key-spec: SYMMETRIC_DEFAULT
  key-usage: ENCRYPT_DECRYPT
  alias: alias/tenant-1
  tags: {owner: t1, tier: gold}
  wrapping-algorithm: RSAES_OAEP_SHA_256
  wrapping-key-spec: RSA_4096
  valid-to: "2027-01-01"
- hsm-label: tenant-2
  generate: false
  key-spec: HMAC_256
  key-usage: GENERATE_VERIFY_MAC
  alias: alias/tenant-2
  wrapping-algorithm: RSAES_OAEP_SHA_256
  wrapping-key-spec: RSA_4096
  no-expiry: true
`)
	fc, err := LoadKeys(csvPath, now)
	if err != nil {
		t.Fatal(err)
	}
	fy, err := LoadKeys(yamlPath, now)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fc.Keys, fy.Keys) {
		t.Fatalf("CSV gave %+v\nYAML gave %+v", fc.Keys, fy.Keys)
	}
	if len(fc.Keys) != 2 || *fc.Keys[0].Generate != true || fc.Keys[0].Tags["tier"] != "gold" || !fc.Keys[1].NoExpiry {
		t.Fatalf("keys: %+v", fc.Keys)
	}
	req, err := fc.Keys[0].Request(fc)
	if err != nil || req.WrapWithTrusted || req.Alias != "alias/tenant-1" {
		t.Fatalf("request %+v, %v: want the alias and no CKA_WRAP_WITH_TRUSTED", req, err)
	}
}

func TestLoadKeysReportsEveryProblemWithItsRow(t *testing.T) {
	tests := []struct {
		name, file, body string
		want             []string
	}{
		{"fail unknown column", "k.csv", "hsm-label,colour\nk,red\n", []string{"k.csv:1: colour: unknown column \"colour\""}},
		{"fail pin column", "k.csv", "hsm-label,pin\nk,1234\n", []string{"PINs never go in a key list"}},
		{"fail bad bool and missing fields", "k.csv", csvHeader + "k1,yes,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/k1,,RSAES_OAEP_SHA_256,RSA_4096,,true\n",
			[]string{"k.csv:2: keys[0].generate must be true or false, not \"yes\""}},
		{"fail duplicate label", "k.csv", csvHeader +
			"k1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/a,,RSAES_OAEP_SHA_256,RSA_4096,,true\n" +
			"k1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/b,,RSAES_OAEP_SHA_256,RSA_4096,,true\n",
			[]string{"k.csv:3: keys[1].hsm-label: \"k1\" is also keys[0].hsm-label"}},
		{"fail yaml unknown field", "k.yaml", "- hsm-label: k1\n  colour: red\n", []string{"k.yaml:2: keys[0].colour: unknown field \"colour\""}},
		{"fail yaml not a list", "k.yaml", "hsm-label: k1\n", []string{"keys must be a list"}},
		{"fail other extension", "k.txt", "k1\n", []string{"a key list is a .csv file"}},
		{"fail empty list", "k.csv", csvHeader, []string{"the list has no keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKeys(writeList(t, tt.file, tt.body), now)
			if !errors.Is(err, kmsimport.ErrInvalidInput) {
				t.Fatalf("got %v, want an invalid-input error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestLoadKeysBadFilesAreErrorsNotPanics: a quote left open, a short row,
// a missing file, a FIFO, /dev/zero and a symlink each give an error
// naming the file (and the line), never a panic, a hang or a huge read.
func TestLoadKeysBadFilesAreErrorsNotPanics(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(dir, "fifo.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.csv")
	os.Symlink("/dev/zero", zero)
	tests := []struct {
		name, path string
		want       []string
	}{
		{"unbalanced quote in a row", write("q.csv", csvHeader+"k1,true,SYMMETRIC_DEFAULT,,,,,,,true\n\"k2,true\n"),
			[]string{"q.csv:3:", "quoted field on line 3 is never closed"}},
		{"unbalanced quote in the header", write("qh.csv", "\"hsm-label,generate\n"),
			[]string{"qh.csv:1:", "never closed"}},
		{"bare quote", write("bq.csv", csvHeader+"k\"1,true,SYMMETRIC_DEFAULT,,,,,,,true\n"),
			[]string{"bq.csv:2:", `bare " in non-quoted-field`}},
		{"short row", write("short.csv", csvHeader+"k1,true\n"),
			[]string{"short.csv:2:", "as many fields as the header row"}},
		{"missing file", filepath.Join(dir, "nosuch.csv"), []string{"--from", "nosuch.csv", "no such file"}},
		{"fifo", fifo, []string{"--from", "FIFO"}},
		{"dev zero", zero, []string{"--from", "symbolic link to /dev/zero"}},
		{"directory", dir, []string{"--from", "is a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKeys(tt.path, now)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !errors.Is(err, kmsimport.ErrInvalidInput) && !errors.Is(err, safefile.ErrBadFile) {
				t.Errorf("error %v is neither invalid input nor a bad file (exit 2)", err)
			}
		})
	}
}

// TestLoadKeysCSVMultiRegion: the multi-region and replica-regions columns
// are read (a bool column panicked), and their Regions checked.
func TestLoadKeysCSVMultiRegion(t *testing.T) {
	const h = "hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry,multi-region,replica-regions\n"
	f, err := LoadKeys(writeList(t, "mr.csv", h+"k1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/k1,RSAES_OAEP_SHA_256,RSA_4096,true,true,us-west-2;eu-west-1\n"), now)
	if err != nil {
		t.Fatal(err)
	}
	if k := f.Keys[0]; !k.MultiRegion || !reflect.DeepEqual(k.ReplicaRegions, []string{"us-west-2", "eu-west-1"}) {
		t.Fatalf("key %+v", k)
	}
	for body, want := range map[string]string{
		"k1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/k1,RSAES_OAEP_SHA_256,RSA_4096,true,maybe,us-west-2\n": `keys[0].multi-region must be true or false, not "maybe"`,
		"k1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/k1,RSAES_OAEP_SHA_256,RSA_4096,true,true,US-WEST-2\n":  "write us-west-2",
		"k1,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/k1,RSAES_OAEP_SHA_256,RSA_4096,true,true,bogus\n":      `"bogus" is not an AWS Region`,
	} {
		_, err := LoadKeys(writeList(t, "mr.csv", h+body), now)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}
