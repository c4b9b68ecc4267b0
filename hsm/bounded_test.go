package hsm

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/pkcs11"
)

// hangingP11 is a token whose C_GenerateKey never returns (until the test
// ends), and which counts the calls that reach it.
type hangingP11 struct {
	fakeP11
	release chan struct{}
	reached atomic.Int32
}

func (h *hangingP11) GenerateKey(pkcs11.SessionHandle, []*pkcs11.Mechanism, []*pkcs11.Attribute) (pkcs11.ObjectHandle, error) {
	h.reached.Add(1)
	<-h.release
	return 0, nil
}

func (h *hangingP11) GetTokenInfo(uint) (pkcs11.TokenInfo, error) {
	h.reached.Add(1)
	return pkcs11.TokenInfo{}, nil
}

// TestHungCallIsBoundedAndSaysItsEffect: a call that does not return is
// answered after the bound with what is known of its effect, and the
// module is left alone from then on.
func TestHungCallIsBoundedAndSaysItsEffect(t *testing.T) {
	h := &hangingP11{release: make(chan struct{})}
	defer close(h.release)
	b := boundedP11{p: h, d: 20 * time.Millisecond, w: &wedge{}}
	_, err := b.GenerateKey(1, nil, nil)
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrTokenUnresponsive) || te.Call != "C_GenerateKey" {
		t.Fatalf("got %v, want a TimeoutError for C_GenerateKey", err)
	}
	for _, want := range []string{"did not return within 20ms", "may or may not have generated the key", "run the same command again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	// Wrapped by the caller as a failed call, it keeps its own words.
	if got := newError("C_GenerateKey", err); got != err {
		t.Errorf("newError rewrapped it: %v", got)
	}
	reached := h.reached.Load()
	if _, err := b.GetTokenInfo(0); !errors.As(err, &te) || te.Call != "C_GenerateKey" {
		t.Errorf("a call after the timeout: %v, want the same TimeoutError", err)
	}
	if h.reached.Load() != reached {
		t.Errorf("a call reached the module after it timed out")
	}
	if !strings.Contains(effectOf("C_FindObjects"), "nothing in the token was changed") {
		t.Errorf("a read's effect: %q", effectOf("C_FindObjects"))
	}
}

// TestTokenGoneIsSaidHonestly: a token that stopped answering (an RPC
// server killed) is named as such, with what is known of the call.
func TestTokenGoneIsSaidHonestly(t *testing.T) {
	f := &fakeP11{wrap: func() ([]byte, error) { return nil, pkcs11.Error(pkcs11.CKR_DEVICE_ERROR) }}
	b := boundedP11{p: f, d: time.Minute, w: &wedge{}}
	_, err := b.WrapKey(1, nil, 1, 2)
	var ge *GoneError
	if !errors.As(err, &ge) || !errors.Is(err, ErrTokenUnresponsive) || !errors.Is(err, pkcs11.Error(pkcs11.CKR_DEVICE_ERROR)) {
		t.Fatalf("got %v, want a GoneError", err)
	}
	for _, want := range []string{"C_WrapKey", "CKR_DEVICE_ERROR", "stopped answering", "no wrapped material was received", "run the same command again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	// The module is not wedged: the next call goes through.
	if _, err := b.WrapKey(1, nil, 1, 2); !errors.As(err, &ge) {
		t.Errorf("second call: %v", err)
	}
}

// TestRPCClientFailureIsTokenGone: the all-ones CK_RV an RPC client module
// (Caml Crush's) returns when its server is gone is the token gone, not a
// refusal of the call.
func TestRPCClientFailureIsTokenGone(t *testing.T) {
	f := &fakeP11{wrap: func() ([]byte, error) { return nil, pkcs11.Error(^uint(0)) }}
	b := boundedP11{p: f, d: time.Minute, w: &wedge{}}
	_, err := b.WrapKey(1, nil, 1, 2)
	var ge *GoneError
	if !errors.As(err, &ge) || !errors.Is(err, ErrTokenUnresponsive) {
		t.Fatalf("got %v, want a GoneError", err)
	}
	if !strings.Contains(err.Error(), "stopped answering") || !strings.Contains(err.Error(), "pkcs11proxyd") {
		t.Errorf("message %q does not say the token's server is gone", err)
	}
	if gone(pkcs11.Error(pkcs11.CKR_VENDOR_DEFINED)) {
		t.Errorf("CKR_VENDOR_DEFINED itself is a token's answer, not the token gone")
	}
}
