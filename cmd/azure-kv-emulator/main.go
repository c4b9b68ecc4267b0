// Command azure-kv-emulator serves the loopback Azure Key Vault / Managed
// HSM emulator of package azkvemu over HTTPS with a fresh self-signed
// certificate, for trying `kmsbridge import --cloud azure` by hand.
//
//	azure-kv-emulator --port 8443 --ca-file /tmp/azkv-ca.pem [--managed-hsm]
//
// Clients trust the certificate written to --ca-file and present the
// bearer token azkvemu.Token (kmsbridge: AZURE_KV_EMULATOR_TOKEN).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kmsbridge/kmsbridge/azkvemu"
	"github.com/kmsbridge/kmsbridge/internal/emukeys"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	caFile := flag.String("ca-file", "", "write the server's self-signed certificate (PEM) to this file")
	mhsm := flag.Bool("managed-hsm", false, "play Managed HSM (oct-HSM keys, managedhsm.azure.net challenge) instead of Key Vault Premium")
	lenient := flag.Bool("lenient-pkcs8-padding", false, "accept PKCS#8 followed by 1-7 zero bytes (SoftHSM2 2.6.1's RSA/EC wrap); not known to match Key Vault")
	testKeys := flag.String("test-key-cache", os.Getenv(emukeys.EnvVar), "for tests and rehearsals only: take KEK key pairs from this directory (each at most once per run) and save the ones generated there for the next run (default "+emukeys.EnvVar+"; unset: a fresh pair per key, as Key Vault)")
	flag.Parse()
	f := azkvemu.KeyVault
	if *mhsm {
		f = azkvemu.ManagedHSM
	}
	s := azkvemu.New(f)
	s.LenientPKCS8Padding = *lenient
	keys, err := emukeys.Open(*testKeys)
	if err != nil {
		fmt.Fprintln(os.Stderr, "azure-kv-emulator: --test-key-cache:", err)
		os.Exit(2)
	}
	s.TestKeys = keys
	if err := s.Start(*port); err != nil {
		fmt.Fprintln(os.Stderr, "azure-kv-emulator:", err)
		os.Exit(1)
	}
	if *caFile != "" {
		if err := safefile.WriteFile("CA file", *caFile, s.CAPEM(), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "azure-kv-emulator:", err)
			os.Exit(1)
		}
	}
	fmt.Println(s.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Close()
}
