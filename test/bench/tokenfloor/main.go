// Command tokenfloor is the token's own share of what grows with a full
// token: what a PKCS#11 application that does nothing but open the token
// pays, measured as a whole process beside `kmsbridge import` (bulkbench's
// growth-process figure, BENCHMARKS.md run G). It also fills a token with
// keys for that figure.
//
//	tokenfloor -module M -token T login              # C_Initialize, C_OpenSession, C_Login, C_Logout, C_Finalize
//	tokenfloor -module M -token T -search L login    # the same plus one C_FindObjects for label L (the one search an import makes)
//	tokenfloor -module M -token T -read-labels login  # the same plus every object's label read, as a bulk run reads them
//	tokenfloor -module M -token T -n 10000 fill      # N AES-256 token keys, labels filler-00000...
//
// The PIN comes from TOKENFLOOR_PIN. Like test/bench/floor it shares no
// code with kmsbridge (TestTokenFloorSharesNoCode): github.com/miekg/pkcs11
// alone, so nothing kmsbridge does at start-up is counted in it.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"github.com/miekg/pkcs11"
)

var (
	module = flag.String("module", "/usr/lib/softhsm/libsofthsm2.so", "PKCS#11 module")
	params = flag.String("module-params", "", "C_Initialize's reserved parameter string (NSS softokn's configdir=...)")
	token  = flag.String("token", "", "token label")
	search = flag.String("search", "", "login: also search the token once for objects with this label")
	labels = flag.Bool("read-labels", false, "login: also read every token object's CKA_LABEL (one search, one C_GetAttributeValue per object), as a bulk run reads the token's labels once")
	n      = flag.Int("n", 10000, "fill: keys to generate")
	prefix = flag.String("prefix", "filler", "fill: label prefix")
)

func main() {
	flag.Parse()
	if flag.NArg() != 1 || (flag.Arg(0) != "login" && flag.Arg(0) != "fill") {
		fmt.Fprintln(os.Stderr, "usage: tokenfloor [flags] login|fill")
		os.Exit(2)
	}
	if err := run(flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "tokenfloor:", err)
		os.Exit(1)
	}
}

func run(mode string) error {
	p := pkcs11.New(*module)
	if p == nil {
		return fmt.Errorf("cannot load %s", *module)
	}
	var err error
	if *params != "" {
		buf := append([]byte(*params), 0) // NUL-terminated, alive through the call
		err = p.Initialize(pkcs11.InitializeWithReserved(unsafe.Pointer(&buf[0])))
		runtime.KeepAlive(buf)
	} else {
		err = p.Initialize()
	}
	if err != nil {
		return fmt.Errorf("C_Initialize: %w", err)
	}
	defer p.Destroy()
	defer p.Finalize()
	slot, err := findSlot(p, *token)
	if err != nil {
		return err
	}
	sh, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		return fmt.Errorf("C_OpenSession: %w", err)
	}
	defer p.CloseSession(sh)
	if err := p.Login(sh, pkcs11.CKU_USER, os.Getenv("TOKENFLOOR_PIN")); err != nil {
		return fmt.Errorf("C_Login: %w", err)
	}
	defer p.Logout(sh)
	switch mode {
	case "login":
		if *labels {
			if err := readLabels(p, sh); err != nil {
				return err
			}
		}
		if *search == "" {
			return nil
		}
		if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, *search)}); err != nil {
			return fmt.Errorf("C_FindObjectsInit: %w", err)
		}
		if _, _, err := p.FindObjects(sh, 2); err != nil {
			return fmt.Errorf("C_FindObjects: %w", err)
		}
		return p.FindObjectsFinal(sh)
	default:
		for i := 0; i < *n; i++ {
			if _, err := p.GenerateKey(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, fmt.Sprintf("%s-%05d", *prefix, i)),
			}); err != nil {
				return fmt.Errorf("key %d of %d: C_GenerateKey: %w", i, *n, err)
			}
		}
		return nil
	}
}

// readLabels reads the label of every token object the user can see.
func readLabels(p *pkcs11.Ctx, sh pkcs11.SessionHandle) error {
	if err := p.FindObjectsInit(sh, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true)}); err != nil {
		return fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	var all []pkcs11.ObjectHandle
	for {
		hs, _, err := p.FindObjects(sh, 64)
		if err != nil {
			return fmt.Errorf("C_FindObjects: %w", err)
		}
		if len(hs) == 0 {
			break
		}
		all = append(all, hs...)
	}
	if err := p.FindObjectsFinal(sh); err != nil {
		return err
	}
	seen := map[string]int{}
	for _, h := range all {
		a, err := p.GetAttributeValue(sh, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
		if err != nil {
			return fmt.Errorf("C_GetAttributeValue: %w", err)
		}
		seen[string(a[0].Value)]++
	}
	return nil
}

// findSlot is the slot whose token has label.
func findSlot(p *pkcs11.Ctx, label string) (uint, error) {
	slots, err := p.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return s, nil
		}
	}
	return 0, fmt.Errorf("no token labelled %q among %d slots", label, len(slots))
}
