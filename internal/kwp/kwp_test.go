package kwp

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKWPVectors checks both directions against the two examples of
// RFC 5649 section 6.
func TestKWPVectors(t *testing.T) {
	kek := "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"
	tests := []struct {
		name       string
		key, wrap  string
		wantLength int
	}{
		{"ok 20-octet key", "c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", 20},
		{"ok 7-octet key (single block)", "466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Wrap(unhex(t, kek), unhex(t, tt.key))
			if !bytes.Equal(got, unhex(t, tt.wrap)) {
				t.Errorf("wrap = %x, want %s", got, tt.wrap)
			}
			plain, err := Unwrap(unhex(t, kek), unhex(t, tt.wrap))
			if err != nil {
				t.Fatalf("unwrap: %v", err)
			}
			if len(plain) != tt.wantLength || !bytes.Equal(plain, unhex(t, tt.key)) {
				t.Errorf("unwrap = %x, want %s", plain, tt.key)
			}
		})
	}
}

func TestKWPUnwrapRejects(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, 32)
	good := Wrap(kek, bytes.Repeat([]byte{0xAB}, 32))
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 1
	otherKEK := bytes.Repeat([]byte{8}, 32)

	// A block whose AIV is right but whose length indicator claims more
	// bytes than the ciphertext holds.
	block, _ := aes.NewCipher(kek)
	badMLI := make([]byte, 16)
	binary.BigEndian.PutUint32(badMLI, ICV)
	binary.BigEndian.PutUint32(badMLI[4:], 9)
	block.Encrypt(badMLI, badMLI)

	// Non-zero padding: wrap 5 bytes, then forge a block claiming 5 bytes but
	// carrying junk in the padding.
	badPad := make([]byte, 16)
	binary.BigEndian.PutUint32(badPad, ICV)
	binary.BigEndian.PutUint32(badPad[4:], 5)
	copy(badPad[8:], []byte{1, 2, 3, 4, 5, 6, 7, 8})
	block.Encrypt(badPad, badPad)

	tests := []struct {
		name string
		kek  []byte
		ct   []byte
	}{
		{"fail tampered ciphertext", kek, flipped},
		{"fail wrong key-encryption key", otherKEK, good},
		{"fail too short", kek, good[:8]},
		{"fail not a multiple of 8", kek, good[:len(good)-1]},
		{"fail length indicator beyond data", kek, badMLI},
		{"fail length indicator leaving a whole block of padding", kek, wrapMLI(kek, make([]byte, 24), 16)},
		{"fail length indicator of zero", kek, wrapMLI(kek, make([]byte, 16), 0)},
		{"fail non-zero padding", kek, badPad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Unwrap(tt.kek, tt.ct); err == nil {
				t.Fatalf("Unwrap succeeded with %x, want an error", got)
			}
		})
	}
}

func TestKWPRoundTripLengths(t *testing.T) {
	kek := bytes.Repeat([]byte{3}, 32)
	for n := 1; n <= 70; n++ {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		got, err := Unwrap(kek, Wrap(kek, msg))
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("length %d: got %x, %v", n, got, err)
		}
	}
}
