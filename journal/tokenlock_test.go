package journal

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestOneTokenOneRunWhateverTheTarget: label uniqueness is a fact of the
// token, so a second run on the same token waits even when it talks to
// another Region or endpoint; a run on another token does not.
func TestOneTokenOneRunWhateverTheTarget(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(context.Background(), dir, Scope{TokenSerial: "tok1", Target: "us-east-1@127.0.0.1:4599"})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"eu-west-1@127.0.0.1:4599", "us-east-1@localhost:4599", "us-east-1@aws@other-profile"} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := Open(ctx, dir, Scope{TokenSerial: "tok1", Target: target})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "this token") {
			t.Errorf("target %s: got %v, want a wait on the token's lock", target, err)
		}
	}
	other, err := Open(context.Background(), dir, Scope{TokenSerial: "tok2", Target: "us-east-1@127.0.0.1:4599"})
	if err != nil {
		t.Fatalf("another token: %v", err)
	}
	other.Close()
	first.Close()
	again, err := Open(context.Background(), dir, Scope{TokenSerial: "tok1", Target: "eu-west-1@127.0.0.1:4599"})
	if err != nil {
		t.Fatalf("after the first run closed: %v", err)
	}
	again.Close()
}
