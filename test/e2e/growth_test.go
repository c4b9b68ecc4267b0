package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

// spyCall is one line of pkcs11-spy's log that names a call.
var spyCall = regexp.MustCompile(`(?m)^\d+: (C_\w+)`)

// spiedCalls runs kmsbridge with args through OpenSC's pkcs11-spy in front
// of SoftHSM2 and counts, from the spy's log, every PKCS#11 call the whole
// process made: start-up, login and everything after, not only the
// import's own steps.
func spiedCalls(t *testing.T, tok *softhsm.Token, name string, args ...string) map[string]int {
	t.Helper()
	log := filepath.Join(t.TempDir(), name+".spy.log")
	env := []string{tok.Environ(), "PKCS11SPY=" + softhsm.DefaultModule, "PKCS11SPY_OUTPUT=" + log,
		"KMSBRIDGE_PKCS11_MODULE=" + pkcs11Spy, "KMSBRIDGE_PIN=" + tok.PIN}
	r := runBinary(t, env, args...)
	if r.Code != 0 {
		t.Fatalf("%s: exit %d\nstderr:\n%s", name, r.Code, r.Stderr)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, m := range spyCall.FindAllStringSubmatch(string(b), -1) {
		calls[m[1]]++
	}
	if calls["C_Initialize"] == 0 {
		t.Fatalf("%s: pkcs11-spy logged no C_Initialize: the calls did not go through it", name)
	}
	return calls
}

const pkcs11Spy = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so"

// TestProcessTokenCallsDoNotGrowWithTheToken counts every PKCS#11 call of
// whole kmsbridge processes (doctor, a single import, 4-key and 3-key bulk imports)
// into an empty SoftHSM2 token and again once it holds objects more: no
// start-up or import work is proportional to what the token holds, beyond
// what each command must do. A single import and doctor make the same
// calls either way (doctor counts the objects with one search and reads
// none of them), and so does a 3-key bulk run (a search per key); a
// larger bulk run reads each object's label exactly once (its
// one read of the token, instead of a search per key) and nothing else
// more. Every process initialises the module once and logs in once,
// however many keys it imports. On SoftHSM2 every search and every
// attribute read touches each object's file (docs/tokens.md), so a call
// more per object is what made a full token slow.
func TestProcessTokenCallsDoNotGrowWithTheToken(t *testing.T) {
	t.Parallel()
	needFile(t, pkcs11Spy, "opensc-pkcs11")
	emu := startEmulator(t)
	tok := newToken(t)
	imp := func(label string) []string {
		return []string{"import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
			"--key-label", label, "--generate", "--no-expiry", "--wrapping-key-spec", "RSA_2048", "--output", "json"}
	}
	bulkOf := func(prefix string, keys int) []string {
		var csv strings.Builder
		csv.WriteString("hsm-label,generate,key-spec,key-usage,alias,wrapping-algorithm,wrapping-key-spec,no-expiry\n")
		for i := 0; i < keys; i++ {
			fmt.Fprintf(&csv, "%s-%d,true,SYMMETRIC_DEFAULT,ENCRYPT_DECRYPT,alias/%s-%d,RSAES_OAEP_SHA_1,RSA_2048,true\n", prefix, i, prefix, i)
		}
		list := filepath.Join(t.TempDir(), prefix+".csv")
		if err := os.WriteFile(list, []byte(csv.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"import", "--token-label", tok.Label, "--endpoint-url", emu.URL, "--allow-endpoint", emu.URL,
			"--from", list, "--parallel", "2", "--kms-rate", "off", "--output", "json"}
	}
	bulk := func(prefix string) []string { return bulkOf(prefix, 4) }
	doctor := []string{"doctor", "--token-label", tok.Label, "--output", "json"}

	// Empty: doctor at 0 objects, the import at 0, the bulk run at 1.
	doctor0 := spiedCalls(t, tok, "doctor-empty", doctor...)
	single0 := spiedCalls(t, tok, "import-empty", imp("single-empty")...)
	bulk0 := spiedCalls(t, tok, "bulk-empty", bulk("bulk-empty")...)
	small0 := spiedCalls(t, tok, "bulk3-empty", bulkOf("bulk3-empty", 3)...)

	// Full: n objects more (private data objects, as another application
	// of the token keeps), more than one C_FindObjects batch of old.
	const n = 200
	withUserSession(t, tok, func(p *pkcs11.Ctx, sh pkcs11.SessionHandle) {
		for i := 0; i < n; i++ {
			if _, err := p.CreateObject(sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_DATA),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, fmt.Sprintf("other-app-%03d", i)),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE, []byte("not a key")),
			}); err != nil {
				t.Fatalf("object %d: %v", i, err)
			}
		}
	})
	doctor1 := spiedCalls(t, tok, "doctor-full", doctor...)
	single1 := spiedCalls(t, tok, "import-full", imp("single-full")...)
	bulk1 := spiedCalls(t, tok, "bulk-full", bulk("bulk-full")...)
	small1 := spiedCalls(t, tok, "bulk3-full", bulkOf("bulk3-full", 3)...)

	for _, c := range []struct {
		name        string
		empty, full map[string]int
		// moreReads is how many more C_GetAttributeValue the full run
		// may make: for the bulk run, one per object added since the
		// empty one (the n, the empty bulk runs' 4 and 3 keys, the
		// full single import's key), each label read once.
		moreReads int
	}{
		{"doctor", doctor0, doctor1, 0},
		{"import", single0, single1, 0},
		{"import --from (4 keys)", bulk0, bulk1, n + 4 + 3 + 1},
		// Up to 3 keys a run searches for each key's label, which costs
		// less than reading every label (BENCHMARKS.md, run G).
		{"import --from (3 keys)", small0, small1, 0},
	} {
		for _, call := range []string{"C_Initialize", "C_Login"} {
			if c.empty[call] != 1 || c.full[call] != 1 {
				t.Errorf("%s: %s %d times into the empty token, %d into the full one; want once per process", c.name, call, c.empty[call], c.full[call])
			}
		}
		calls := map[string]bool{}
		for call := range c.empty {
			calls[call] = true
		}
		for call := range c.full {
			calls[call] = true
		}
		for call := range calls {
			want := c.empty[call]
			switch call {
			case "C_GetAttributeValue":
				want += c.moreReads
			case "C_OpenSession", "C_CloseSession":
				// How many sessions a bulk run opens follows how its two
				// workers happened to overlap (the pool opens a second one
				// only when both want a session at once), not what the
				// token holds: at most one a worker and the run's own.
				if c.full[call] >= 1 && c.full[call] <= 3 {
					continue
				}
			case "C_FindObjects":
				// A search that returns objects takes one call more, for
				// the empty batch that ends it (n fits in one batch).
				if c.full[call] >= want && c.full[call] <= want+c.full["C_FindObjectsInit"] {
					continue
				}
			}
			if c.full[call] != want {
				t.Errorf("%s: %s %d times into a token of %d objects more, want %d (%d into the empty token): work that grows with what the token holds", c.name, call, c.full[call], n, want, c.empty[call])
			}
		}
	}
	if single1["C_FindObjectsInit"] != 1 || bulk1["C_FindObjectsInit"] != 1 || small1["C_FindObjectsInit"] != 3 {
		t.Errorf("searches: %d for one import, %d for a 4-key bulk run, %d for a 3-key one; want 1, 1 (the token's labels read once) and 3 (a search per key)", single1["C_FindObjectsInit"], bulk1["C_FindObjectsInit"], small1["C_FindObjectsInit"])
	}
}
