package journal

import (
	"context"
	"testing"
	"time"
)

// A second target's journal opened beside the first in one process does
// not wait for the token's lock the first holds; without a holder, Open
// would wait for it until ctx ends.
func TestOpenBesideSharesTheTokensLock(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	a, err := Open(ctx, dir, Scope{TokenSerial: "abc", Target: "aws"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenBeside(ctx, dir, Scope{TokenSerial: "abc", Target: "gcp"}, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := Open(short, dir, Scope{TokenSerial: "abc", Target: "azure"}); err == nil {
		t.Fatal("Open took the token's lock that another journal holds")
	}
	for _, bad := range []struct {
		scope  Scope
		holder *Journal
	}{
		{Scope{TokenSerial: "other", Target: "gcp"}, a},
		{Scope{TokenSerial: "abc", Target: "gcp"}, nil},
		{Scope{TokenSerial: "abc", Target: "aws"}, a},
	} {
		if j, err := OpenBeside(ctx, dir, bad.scope, bad.holder); err == nil {
			j.Close()
			t.Errorf("OpenBeside(%+v) with holder %v was allowed", bad.scope, bad.holder != nil)
		}
	}
}
