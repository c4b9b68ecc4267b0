package kmsimport

import (
	"go/ast"
	"testing"
)

// hsmCalls are the Token methods that touch key material or make keys:
// only the HSM side (hsmside.go) calls them, so every cloud generates,
// journals and wraps one way.
var hsmCalls = map[string]bool{"WrapOAEP": true, "WrapRSAAES": true, "GenerateAfterSearch": true}

// TestOnlyTheHSMSideWrapsOrGenerates fails when code under kmsimport/,
// ceremony/ or cmd/ wraps or generates an HSM key other than through
// WrapInToken and GenerateHSMKey.
func TestOnlyTheHSMSideWrapsOrGenerates(t *testing.T) {
	for rel, f := range sourceFiles(t, "kmsimport", "ceremony", "cmd") {
		if rel == "kmsimport/hsmside.go" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && hsmCalls[sel.Sel.Name] {
				t.Errorf("%s: %s outside the HSM side: use kmsimport.WrapInToken or GenerateHSMKey", rel, sel.Sel.Name)
			}
			return true
		})
	}
}
