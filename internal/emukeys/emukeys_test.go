package emukeys

import (
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNilSourceGeneratesFresh(t *testing.T) {
	var s *Source
	a, err := s.RSA(1024)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.RSA(1024)
	if err != nil {
		t.Fatal(err)
	}
	if a.N.Cmp(b.N) == 0 {
		t.Fatal("two calls of a Source without cache gave the same pair")
	}
	if s, err := Open(""); s != nil || err != nil {
		t.Fatalf("Open(\"\") = %v, %v; want nil, nil", s, err)
	}
}

// TestCacheReusedAcrossRunsNeverWithinOne: a second Source over the same
// directory gets the first one's pairs in order; within one Source no pair
// is handed out twice.
func TestCacheReusedAcrossRunsNeverWithinOne(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	first, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := first.RSA(1024)
	a2, _ := first.RSA(1024)
	if a1.N.Cmp(a2.N) == 0 {
		t.Fatal("one Source handed out the same pair twice")
	}
	if h, m := first.Stats(); h != 0 || m != 2 {
		t.Fatalf("first run: %d hits, %d generated; want 0, 2", h, m)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory: %v %v, want mode 0700", st, err)
	}

	second, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := second.RSA(1024)
	b2, _ := second.RSA(1024)
	b3, err := second.RSA(1024)
	if err != nil {
		t.Fatal(err)
	}
	if b1.N.Cmp(a1.N) != 0 || b2.N.Cmp(a2.N) != 0 {
		t.Fatal("the second run did not get the cached pairs in order")
	}
	if b3.N.Cmp(a1.N) == 0 || b3.N.Cmp(a2.N) == 0 {
		t.Fatal("the second run handed out a pair twice")
	}
	if h, m := second.Stats(); h != 2 || m != 1 {
		t.Fatalf("second run: %d hits, %d generated; want 2, 1", h, m)
	}
	// Sizes are separate: a 2048-bit request never gets a 1024-bit pair.
	if files, _ := filepath.Glob(filepath.Join(dir, "rsa-1024-*.pem")); len(files) != 3 {
		t.Fatalf("cache holds %d RSA-1024 files, want 3", len(files))
	}
}

func TestCorruptCacheFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rsa-1024-0000.pem"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.RSA(1024)
	if err == nil || !strings.Contains(err.Error(), "delete the file") {
		t.Fatalf("err = %v, want one saying to delete the file", err)
	}
}

func TestSharedDirectoryRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil {
		t.Fatal("a world-writable cache directory was accepted")
	}
}

// TestReleasedPairIsHandedOutAgainFirst: a pair given back is handed out
// again, oldest first, before any new one; a pair not handed out, or
// given back twice, is not.
func TestReleasedPairIsHandedOutAgainFirst(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.RSA(1024)
	b, _ := s.RSA(1024)
	c, err := s.RSA(1024)
	if err != nil {
		t.Fatal(err)
	}
	s.Release(b)
	s.Release(b) // twice: still one use to give
	s.Release(a)
	stranger, err := (*Source)(nil).RSA(1024)
	if err != nil {
		t.Fatal(err)
	}
	s.Release(stranger) // never handed out by s: ignored
	if got, _ := s.RSA(1024); got != b {
		t.Fatal("the first pair after a Release is not the oldest pair given back")
	}
	if got, _ := s.RSA(1024); got != a {
		t.Fatal("the second pair after two Releases is not the other pair given back")
	}
	d, err := s.RSA(1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*rsa.PrivateKey{a, b, c, stranger} {
		if d.N.Cmp(k.N) == 0 {
			t.Fatal("with nothing given back, a pair was handed out again (or a stranger's taken in)")
		}
	}
	if h, m := s.Stats(); h != 2 || m != 4 {
		t.Fatalf("%d hits, %d generated; want 2 (the pairs given back), 4", h, m)
	}
	// Without a cache Release does nothing.
	var none *Source
	none.Release(a)
}
