// Command gcp-kms-emulator serves the local Google Cloud KMS emulator of
// package gcpemu (gRPC, plaintext, loopback only) for kmsbridge's
// end-to-end tests and for trying kmsbridge by hand. See --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/gcpemu"
	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
	"github.com/kmsbridge/kmsbridge/internal/emukeys"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newApp(stdout io.Writer) *cli.Command {
	return &cli.Command{
		Name:    "gcp-kms-emulator",
		Version: buildinfo.Get().Version,
		Usage:   "serve a local Google Cloud KMS emulator (key import with attestation) for tests",
		Description: `gcp-kms-emulator speaks Cloud KMS's gRPC API in plaintext on a loopback address,
for Google's Go client with option.WithEndpoint, option.WithoutAuthentication and
insecure transport credentials. Its first line on stdout is
"listening on http://127.0.0.1:PORT" (give that URL to kmsbridge --endpoint-url).
With --rest-listen it also serves Cloud KMS's REST API (v1, JSON over HTTP, as
gcloud and curl speak it) on the same state, and its second line is
"rest on http://127.0.0.1:PORT" (for gcloud: set api_endpoint_overrides/cloudkms
to that URL followed by /).
ImportJobs of protection level HSM carry an attestation signed by test roots the
emulator generates at start; --roots-dir writes them out as
manufacturer-root.pem and owner-root.pem. They prove nothing about a real HSM.
All state is in memory and is lost on exit.

Examples:
  gcp-kms-emulator --roots-dir /tmp/emu-roots
  gcp-kms-emulator --import-job-ttl 30s --fault ImportCryptoKeyVersion:lost
  gcp-kms-emulator --rest-listen 127.0.0.1:8443
  curl -X POST 'http://127.0.0.1:8443/v1/projects/p1-test/locations/global/keyRings?keyRingId=r1'`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:0", Usage: "loopback `HOST:PORT` to serve on"},
			&cli.StringFlag{Name: "rest-listen", Usage: "also serve the REST API on loopback `HOST:PORT` (off by default)"},
			&cli.StringFlag{Name: "roots-dir", Usage: "write the test trust roots to `DIR`"},
			&cli.DurationFlag{Name: "import-job-ttl", Usage: "ImportJob lifetime (default: Cloud KMS's 72h)"},
			&cli.DurationFlag{Name: "import-delay", Usage: "how long an imported version stays PENDING_IMPORT"},
			&cli.DurationFlag{Name: "destroy-delay", Usage: "replace every key's destroy_scheduled_duration (tests)"},
			&cli.StringSliceFlag{Name: "project", Config: cli.StringConfig{TrimSpace: true}, Usage: "the only `PROJECT_ID`s that exist (repeatable); others answer PERMISSION_DENIED (default: any)"},
			&cli.BoolFlag{Name: "lenient-pkcs8-padding", Usage: "accept zero bytes after PKCS#8 private keys, as SoftHSM2 2.6 wraps them (unknown whether Cloud KMS does)"},
			&cli.StringFlag{Name: "tamper-attestation", Usage: "spoil every HSM job's attestation, for tests: statement, wrapping-key or extractable"},
			&cli.StringFlag{Name: "test-key-cache", Sources: cli.EnvVars(emukeys.EnvVar),
				Usage: "for tests and rehearsals only: take import-job key pairs, and the test attestation authority's keys (so every emulator sharing DIR has the same test roots), from `DIR` (each pair at most once per run) and save the ones generated there for the next run (default: a fresh pair per job, as Cloud KMS)"},
			&cli.StringSliceFlag{Name: "fault", Config: cli.StringConfig{TrimSpace: true}, Usage: "fail the next call of `METHOD[:lost]` with UNAVAILABLE, before its effect or (lost) after it; repeatable"},
		},
		Action: func(_ context.Context, c *cli.Command) error { return serve(c, stdout) },
	}
}

func serve(c *cli.Command, stdout io.Writer) error {
	if err := gcpemu.CheckLoopback(c.String("listen")); err != nil {
		return usageError{err.Error()}
	}
	if rl := c.String("rest-listen"); rl != "" {
		if err := gcpemu.CheckLoopback(rl); err != nil {
			return usageError{"--rest-listen: " + err.Error()}
		}
	}
	switch c.String("tamper-attestation") {
	case "", gcpemu.TamperStatement, gcpemu.TamperWrappingKey, gcpemu.TamperExtractable:
	default:
		return usageError{"--tamper-attestation: choose statement, wrapping-key or extractable"}
	}
	var faults []gcpemu.Fault
	for _, f := range c.StringSlice("fault") {
		m, mode, _ := strings.Cut(f, ":")
		if m == "" || (mode != "" && mode != "lost") {
			return usageError{fmt.Sprintf("--fault %q: write METHOD or METHOD:lost, e.g. ImportCryptoKeyVersion:lost", f)}
		}
		faults = append(faults, gcpemu.Fault{Method: m, Lost: mode == "lost"})
	}
	testKeys, err := emukeys.Open(c.String("test-key-cache"))
	if err != nil {
		return usageError{"--test-key-cache: " + err.Error()}
	}
	srv, err := gcpemu.New(gcpemu.Options{TestKeys: testKeys, ImportJobTTL: c.Duration("import-job-ttl"), ImportDelay: c.Duration("import-delay"),
		DestroyDelay: c.Duration("destroy-delay"), Faults: faults, Projects: c.StringSlice("project"), LenientPKCS8: c.Bool("lenient-pkcs8-padding"), Tamper: c.String("tamper-attestation")})
	if err != nil {
		return err
	}
	if dir := c.String("roots-dir"); dir != "" {
		a := srv.Authority()
		if err := safefile.WriteFile("--roots-dir", filepath.Join(dir, "manufacturer-root.pem"), a.ManufacturerRootPEM, 0o644); err != nil {
			return usageError{fmt.Sprintf("--roots-dir: %v", err)}
		}
		if err := safefile.WriteFile("--roots-dir", filepath.Join(dir, "owner-root.pem"), a.OwnerRootPEM, 0o644); err != nil {
			return usageError{fmt.Sprintf("--roots-dir: %v", err)}
		}
	}
	l, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	var rest net.Listener
	if rl := c.String("rest-listen"); rl != "" {
		if rest, err = net.Listen("tcp", rl); err != nil {
			l.Close()
			return err
		}
		defer rest.Close()
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", l.Addr())
	if rest != nil {
		fmt.Fprintf(stdout, "rest on http://%s\n", rest.Addr())
		go func() {
			if err := srv.ServeREST(rest); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintln(os.Stderr, "gcp-kms-emulator: REST:", err)
			}
		}()
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		l.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func main() {
	if err := newApp(os.Stdout).Run(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "gcp-kms-emulator:", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
