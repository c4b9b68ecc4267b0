package main

import (
	"fmt"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestExitCodesOfVerdictsAreTheirOwn(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, 0},
		{"expiring", verdictError{exitExpiring, "x"}, 6},
		{"broken", verdictError{exitBroken, "x"}, 7},
		{"wrapped broken", fmt.Errorf("status: %w", verdictError{exitBroken, "x"}), 7},
		{"invalid input stays 2", fmt.Errorf("%w: bad", kmsimport.ErrInvalidInput), 2},
		{"KMS stays 4", &kmsimport.KMSError{Op: "ListKeys"}, 4},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}
