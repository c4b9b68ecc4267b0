// Package emukeys is where the emulators (kms-emulator, gcp-kms-emulator,
// azure-kv-emulator) get the RSA key pairs they would otherwise generate
// per request: AWS wrapping keys, Google import-job keys, Azure KEKs.
//
// By default a Source generates a fresh pair for every request, as the real
// services do. For tests and rehearsals only, a Source can instead take its
// pairs from a cache directory (the emulators' --test-key-cache flag or the
// KMSBRIDGE_EMULATOR_KEY_CACHE variable): one emulator run hands out the
// cached pairs of a size in order, each at most once, so every request of
// that run still gets a pair no earlier request of the run got; a pair
// missing from the directory is generated and saved there, for the next
// emulator run to reuse. A test suite that starts many emulators thus
// generates, per size, only as many pairs as its busiest emulator run asks
// for, instead of one per request of every run (RSA-4096 costs seconds of
// CPU a pair on a small machine).
//
// An emulator that forgets everything a pair served (the kms-emulator's
// KmsBridgeResetRegion, which drops a Region's keys and import tokens)
// gives the pair back with Release, and the Source hands it out again
// before taking a new one: no state left in the emulator can tell the
// second use from the first, as none can across emulator runs. A suite
// that runs hundreds of scenarios on one emulator, each in a Region reset
// after it, so needs as many pairs as its scenarios hold at once, not one
// per request (an RSA-2048 pair is about 70 ms of CPU).
//
// A cached pair is an emulator's own key, never key material kmsbridge
// imports; the directory must still be private to the user (0700), since
// whoever reads it can unwrap what the emulator was sent.
package emukeys

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// EnvVar names the cache directory when an emulator's --test-key-cache
// flag is not given.
const EnvVar = "KMSBRIDGE_EMULATOR_KEY_CACHE"

// maxKeyFile bounds the read of one cached pair: an RSA-4096 PKCS#8 PEM is
// about 3.3 KB.
const maxKeyFile = 16 << 10

// Source hands out RSA key pairs. The zero value and nil generate a fresh
// pair for every call.
type Source struct {
	dir string

	mu   sync.Mutex
	next map[int]int // bits -> index of the next cached pair to hand out
	// out are the pairs handed out and not given back; free, by size, the
	// pairs given back (Release), oldest first, handed out before new ones.
	out  map[*rsa.PrivateKey]bool
	free map[int][]*rsa.PrivateKey

	// Hits and Misses count pairs taken from the cache and generated, for
	// tests.
	hits, misses int
}

// Open returns a Source over dir, which is created (0700) if missing and
// must be private to the user. An empty dir returns a nil Source: a fresh
// pair for every call.
func Open(dir string) (*Source, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("test key cache %s: %w", dir, err)
	}
	if err := safefile.CheckStateDir("test key cache", dir); err != nil {
		return nil, err
	}
	return &Source{dir: dir, next: map[int]int{}, out: map[*rsa.PrivateKey]bool{}, free: map[int][]*rsa.PrivateKey{}}, nil
}

// Cached reports whether s takes pairs from a cache directory.
func (s *Source) Cached() bool { return s != nil && s.dir != "" }

// RSA returns an RSA key pair of bits: a fresh one, or with a cache the
// oldest pair of that size given back (Release), else the next cached pair
// of that size this Source has not handed out yet.
func (s *Source) RSA(bits int) (*rsa.PrivateKey, error) {
	if !s.Cached() {
		return rsa.GenerateKey(rand.Reader, bits)
	}
	s.mu.Lock()
	if free := s.free[bits]; len(free) > 0 {
		k := free[0]
		s.free[bits] = free[1:]
		s.out[k] = true
		s.hits++
		s.mu.Unlock()
		return k, nil
	}
	i := s.next[bits]
	s.next[bits] = i + 1
	s.mu.Unlock()

	path := filepath.Join(s.dir, fmt.Sprintf("rsa-%d-%04d.pem", bits, i))
	k, err := load(path, bits)
	hit := err == nil
	switch {
	case hit:
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	default:
		if k, err = rsa.GenerateKey(rand.Reader, bits); err != nil {
			return nil, err
		}
		if err := save(path, k); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out[k] = true
	if hit {
		s.hits++
	} else {
		s.misses++
	}
	return k, nil
}

// Release gives back k, a pair this Source handed out, for a later RSA
// call to hand out again. The caller must hold no state that k served
// (keys imported under it, import tokens or jobs naming it): the emulators
// call it only when they forget all of that. A pair not from this
// Source's cache, or already given back, is ignored, as is every pair of a
// Source without a cache.
func (s *Source) Release(k *rsa.PrivateKey) {
	if !s.Cached() || k == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.out[k] {
		return
	}
	delete(s.out, k)
	bits := k.N.BitLen()
	s.free[bits] = append(s.free[bits], k)
}

// Stats reports how many pairs came from the cache and how many were
// generated.
func (s *Source) Stats() (hits, misses int) {
	if s == nil {
		return 0, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits, s.misses
}

func load(path string, bits int) (*rsa.PrivateKey, error) {
	b, err := safefile.Read("test key cache file", path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("test key cache file %s: no PRIVATE KEY PEM block; delete the file (or the cache directory) to regenerate it", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("test key cache file %s: %v; delete the file (or the cache directory) to regenerate it", path, err)
	}
	r, ok := k.(*rsa.PrivateKey)
	if !ok || r.N.BitLen() != bits {
		return nil, fmt.Errorf("test key cache file %s: not an RSA-%d private key; delete the file (or the cache directory) to regenerate it", path, bits)
	}
	return r, nil
}

// save writes k to path atomically: a temporary file renamed over it, so
// that emulators sharing the directory read whole files only (when two
// generate the same index at once, the last rename wins; each has used its
// own pair).
func save(path string, k *rsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	tmp := path + ".tmp-" + hex.EncodeToString(r[:])
	if err := safefile.WriteFile("test key cache file", tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("test key cache file %s: %w", path, err)
	}
	return nil
}
