// Command kms-emulator serves the local AWS KMS emulator of package
// kmsemu on a loopback address, for kmsbridge's end-to-end tests and for
// trying kmsbridge by hand. See --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/awsregions"
	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
	"github.com/kmsbridge/kmsbridge/internal/emukeys"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/kmsemu"
)

// Flag names and their environment variables.
const (
	flagListen       = "listen"
	flagRegion       = "region"
	flagAccountID    = "account-id"
	flagTTL          = "import-parameters-ttl"
	flagArtifactsDir = "artifacts-dir"
	flagLenientPKCS8 = "lenient-pkcs8-padding"
	flagTestOps      = "test-operations"
	flagRotation     = "rotation-delay"
	flagCreating     = "replica-creating"
	flagUnknown      = "fresh-key-unknown-for"
	flagLatency      = "latency"
	flagJitter       = "latency-jitter"
	flagQuota        = "quota"
	flagPool         = "wrapping-key-pool"
	flagPoolRefill   = "wrapping-key-pool-refill"
	flagTestKeys     = "test-key-cache"

	envListen       = "KMS_EMULATOR_LISTEN"
	envRegion       = "KMS_EMULATOR_REGION"
	envAccountID    = "KMS_EMULATOR_ACCOUNT_ID"
	envTTL          = "KMS_EMULATOR_IMPORT_PARAMETERS_TTL"
	envArtifactsDir = "KMS_EMULATOR_ARTIFACTS_DIR"
	envLenientPKCS8 = "KMS_EMULATOR_LENIENT_PKCS8_PADDING"
	envTestOps      = "KMS_EMULATOR_TEST_OPERATIONS"
	envRotation     = "KMS_EMULATOR_ROTATION_DELAY"
	envLatency      = "KMS_EMULATOR_LATENCY"
	envJitter       = "KMS_EMULATOR_LATENCY_JITTER"
	envQuota        = "KMS_EMULATOR_QUOTA"
	envPool         = "KMS_EMULATOR_WRAPPING_KEY_POOL"
)

// Exit codes.
const (
	exitOK           = 0
	exitFailure      = 1
	exitInvalidInput = 2
)

const shutdownGrace = 5 * time.Second

// usageError marks an error in the command line itself (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func newApp(stdout, stderr io.Writer) *cli.Command {
	return &cli.Command{
		Name:      "kms-emulator",
		Version:   buildinfo.Get().Version,
		Usage:     "serve a local AWS KMS emulator (key import, Encrypt/Decrypt, MAC, Sign/Verify) for tests",
		UsageText: "kms-emulator [--listen 127.0.0.1:PORT] [--region R] [--account-id N] [--import-parameters-ttl D] [--artifacts-dir DIR] [--lenient-pkcs8-padding] [--test-operations] [--rotation-delay D] [--latency D] [--latency-jitter D] [--quota OP=RPS|aws-defaults]... [--wrapping-key-pool N|SPEC=N]...",
		Description: `kms-emulator speaks the AWS KMS JSON protocol on a loopback address, so the aws
CLI and the AWS SDKs work against it with --endpoint-url (kmsbridge: --endpoint-url
URL --allow-endpoint URL, since it is not AWS's). Signatures are not
checked: any credentials work. Each request is served in the Region it is
signed for (one process serves every Region: its own keys, aliases and
wrapping keys each), so multi-Region keys (CreateKey --multi-region,
ReplicateKey, UpdatePrimaryRegion) work across Regions. All state is in memory and is lost on exit.
It is a test tool: it has no authentication and refuses to listen anywhere
but on loopback.

The first line on stdout is exactly "listening on http://HOST:PORT"; with the
default --listen 127.0.0.1:0 the port is chosen by the system, so scripts read
that line. It then serves until SIGINT or SIGTERM, logging one line per
request (operation, key id, outcome) to stderr. Key material is never logged.

Emulated: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
ScheduleKeyDeletion, CancelKeyDeletion, CreateAlias, ListAliases, UpdateAlias,
DeleteAlias, TagResource, UntagResource, ListResourceTags,
GetParametersForImport, ImportKeyMaterial, DeleteImportedKeyMaterial, Encrypt,
Decrypt, GenerateMac, VerifyMac, GetPublicKey, Sign, Verify, RotateKeyOnDemand,
ListKeyRotations and GetKeyRotationStatus, for key specs
SYMMETRIC_DEFAULT, HMAC_224/256/384/512, RSA_2048/3072/4096 (SIGN_VERIFY or
ENCRYPT_DECRYPT), ECC_NIST_P256/P384/P521 and ECC_SECG_P256K1 (SIGN_VERIFY).
Imported RSA and EC material must be exactly one DER PKCS#8 PrivateKeyInfo of
the key's type, curve and size.

On-demand rotation of imported symmetric material works as in KMS:
ImportKeyMaterial --import-type NEW_KEY_MATERIAL leaves the new material
PENDING_ROTATION with its own KeyMaterialId, RotateKeyOnDemand makes it
CURRENT --rotation-delay later (default 2s, on the emulated clock), older
material stays NON_CURRENT and still decrypts; at most 25 rotations per key.

--test-operations turns on the emulator-only operations, for tests (off, they
answer UnknownOperationException, as real KMS does). They are sent like any
other operation, X-Amz-Target: TrentService.<Name>:
   KmsBridgeGetKeyCheckValue {KeyId, KeyMaterialId (optional)}
                                       -> {KeyId, KeyCheckValue, KeyMaterialId}
                                          (SYMMETRIC_DEFAULT keys only)
   KmsBridgeAdvanceClock {Seconds}     -> {Now}: moves the emulated clock on
   KmsBridgeInjectFault {Operation, Fault, Occurrence, Count, HangMillis}
                                       -> {FaultId}
      the Occurrence-th next call of Operation (default 1: the next one) and
      the Count-1 calls after it (default Count 1) get Fault:
        InternalError  HTTP 500 KMSInternalException, nothing done
        Throttling     HTTP 400 ThrottlingException, nothing done
        Reset          connection reset without a response, nothing done
        Hang           waits HangMillis (1..600000) of real time, then does
                       the call and answers; if the client went away
                       meanwhile, nothing is done and nothing answered
        LostResponse   the call is done, then the connection is closed
                       without a response
   KmsBridgeListFaults {}  -> {Pending: [...], Fired: [{FaultId, Operation,
                              Fault, Call, TookEffect, Outcome, Time}], Calls}
   KmsBridgeClearFaults {} -> {Cleared}: drops pending faults and the log

For rehearsals and benchmarks at scale: --latency and --latency-jitter delay
every KMS request (not the test operations) by that much real time plus a
random share of the jitter; --quota OP=RPS (repeatable; OP+OP=RPS for a shared
bucket) answers ThrottlingException above that many requests in any one
second (a window sliding with each request, no burst), per operation and
Region;
--quota aws-defaults applies AWS KMS's published default request quotas,
the table kmsbridge's own limits use (e.g. CreateKey 5, GetParametersForImport
1, ImportKeyMaterial 15, DescribeKey 2000; see docs/kms-quotas.md), later
--quota values override it.
--wrapping-key-pool N (or RSA_4096=N, repeatable) generates N wrapping key
pairs per spec ahead, one generator per CPU, and refills them in the
background only while no request has come for a quarter of a second, so key
generation never shares the CPUs with a run; the listening line is printed
only once those pools are full, so a benchmark starts with them ready.
--wrapping-key-pool-refill=false fills them once and never again, and keeps
no pool for other specs: the emulator then does no work of its own between
requests, which a measurement on shared CPUs needs.
--test-key-cache DIR (or KMSBRIDGE_EMULATOR_KEY_CACHE), for test suites and
rehearsals only, takes the wrapping key pairs from DIR, in order, each at most
once per emulator run, and saves there any pair it has to generate, so that
the next emulator run reuses it instead of spending seconds of CPU on an
RSA-4096 pair. Without it every GetParametersForImport gets a freshly
generated pair, as from KMS. DIR holds private keys: it must be the user's own.

--lenient-pkcs8-padding accepts RSA and EC material whose PKCS#8 DER is
followed by 1 to 7 zero bytes, and logs a warning each time. It exists only
because SoftHSM2 2.6.1 zero-pads PKCS#8 to a multiple of 8 before its RFC 5649
wrap; whether real KMS accepts such material is not known, so it is off by
default.

Example, with the aws CLI:

   $ kms-emulator --listen 127.0.0.1:4599 --artifacts-dir ./kms-artifacts &
   listening on http://127.0.0.1:4599
   $ export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
   $ aws kms create-key --origin EXTERNAL --endpoint-url http://127.0.0.1:4599
   $ aws kms get-parameters-for-import --key-id KEY-ID \
         --wrapping-algorithm RSA_AES_KEY_WRAP_SHA_256 --wrapping-key-spec RSA_4096 \
         --endpoint-url http://127.0.0.1:4599
   $ aws kms import-key-material --key-id KEY-ID \
         --import-token fileb://token.bin --encrypted-key-material fileb://wrapped.bin \
         --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE --endpoint-url http://127.0.0.1:4599

With --artifacts-dir, every ImportKeyMaterial call leaves import-NNN.json
there (mode 0600): the wrapped blob, the wrapping private key as PKCS#8 PEM
and the outcome, so the wrapping can be checked independently, for example
with openssl pkeyutl -decrypt -pkeyopt rsa_padding_mode:oaep ...

Exit codes: 0 stopped by a signal, 1 failure while serving, 2 invalid flags.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagListen, Sources: cli.EnvVars(envListen), Value: "127.0.0.1:0",
				Usage: "`HOST:PORT` to listen on; HOST must be loopback (127.0.0.1, ::1 or localhost), PORT 0 picks a free one"},
			&cli.StringFlag{Name: flagRegion, Sources: cli.EnvVars(envRegion), Value: "us-east-1",
				Usage: "default `REGION`, for requests without a SigV4 credential scope; signed requests are served in the Region they are signed for"},
			&cli.StringFlag{Name: flagAccountID, Sources: cli.EnvVars(envAccountID), Value: "111122223333",
				Usage: "12-digit AWS `ACCOUNT` id in the ARNs the emulator issues and accepts"},
			&cli.DurationFlag{Name: flagTTL, Sources: cli.EnvVars(envTTL), Value: 24 * time.Hour,
				Usage: "`DURATION` for which GetParametersForImport public keys and import tokens stay valid"},
			&cli.StringFlag{Name: flagArtifactsDir, Sources: cli.EnvVars(envArtifactsDir),
				Usage: "write import-NNN.json for every ImportKeyMaterial call into `DIR` (created 0700 if missing)"},
			&cli.DurationFlag{Name: flagRotation, Sources: cli.EnvVars(envRotation), Value: 2 * time.Second,
				Usage: "`DURATION` after RotateKeyOnDemand until the rotation completes (on the emulated clock)"},
			&cli.DurationFlag{Name: flagCreating, Value: time.Second,
				Usage: "a new replica key is Creating for `DURATION` (on the emulated clock) before it is usable, as KMS replicates asynchronously; 0: at once"},
			&cli.DurationFlag{Name: flagUnknown,
				Usage: "eventual consistency: a key just created or replicated answers NotFoundException and is not listed by ListKeys for `DURATION` (on the emulated clock); default 0, at once visible"},
			&cli.DurationFlag{Name: flagLatency, Sources: cli.EnvVars(envLatency),
				Usage: "delay every KMS request by `DURATION` of real time (e.g. 30ms), as a network round trip would"},
			&cli.DurationFlag{Name: flagJitter, Sources: cli.EnvVars(envJitter),
				Usage: "add a random delay from 0 to `DURATION` to every KMS request"},
			&cli.StringSliceFlag{Name: flagQuota, Config: cli.StringConfig{TrimSpace: true}, Sources: cli.EnvVars(envQuota),
				Usage: "request quota `OP=RPS` (OP+OP=RPS shares one bucket; aws-defaults: AWS's published defaults); repeatable, later values win"},
			&cli.StringSliceFlag{Name: flagPool, Config: cli.StringConfig{TrimSpace: true}, Sources: cli.EnvVars(envPool),
				Usage: "keep `N` (or SPEC=N, e.g. RSA_4096=50) wrapping key pairs per spec generated ahead; the listening line waits until they are ready"},
			&cli.BoolFlag{Name: flagPoolRefill, Value: true,
				Usage: "refill the wrapping key pools in the background; =false fills --wrapping-key-pool once and generates nothing between requests (for measurements)"},
			&cli.StringFlag{Name: flagTestKeys, Sources: cli.EnvVars(emukeys.EnvVar),
				Usage: "for tests and rehearsals only: take wrapping key pairs from `DIR` (a pair is handed out again only after KmsBridgeResetRegion forgot everything it served) and save the ones generated there for the next run (default: a fresh pair per GetParametersForImport, as KMS)"},
			&cli.BoolFlag{Name: flagTestOps, Sources: cli.EnvVars(envTestOps),
				Usage: "serve the emulator-only KmsBridge* operations (key check value, clock, fault injection); for tests only"},
			&cli.BoolFlag{Name: flagLenientPKCS8, Sources: cli.EnvVars(envLenientPKCS8),
				Usage: "accept 1 to 7 zero bytes after a PKCS#8 DER (SoftHSM2 2.6.1 pads so); logs a warning each time; real KMS may refuse such material"},
			&cli.StringFlag{Name: flagOutput, Value: "text", Usage: "format of --version: text or json"},
		},
		HideHelpCommand: true,
		OnUsageError: func(_ context.Context, _ *cli.Command, err error, _ bool) error {
			return usageError{fmt.Sprintf("%v: see kms-emulator --help", err)}
		},
		Action: func(ctx context.Context, c *cli.Command) error {
			if c.NArg() > 0 {
				return usageError{fmt.Sprintf("unexpected argument %q: kms-emulator takes only flags", c.Args().First())}
			}
			return serve(ctx, c, stdout, stderr)
		},
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by main, with their exit code.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newApp(os.Stdout, os.Stderr).Run(ctx, os.Args)
	stop()
	if err != nil {
		var uerr usageError
		if msg := err.Error(); strings.HasPrefix(msg, "could not parse ") && strings.Contains(msg, " from environment variable ") {
			// A flag's environment variable that does not parse.
			err = usageError{msg + ": see kms-emulator --help"}
		}
		fmt.Fprintf(os.Stderr, "kms-emulator: %v\n", err)
		if errors.As(err, &uerr) {
			os.Exit(exitInvalidInput)
		}
		os.Exit(exitFailure)
	}
	os.Exit(exitOK)
}

var accountRE = regexp.MustCompile(`^[0-9]{12}$`)

// serve runs the emulator until the context is cancelled by a signal.
func serve(ctx context.Context, c *cli.Command, stdout, stderr io.Writer) error {
	addr := c.String(flagListen)
	if err := checkLoopback(addr); err != nil {
		return err
	}
	if err := awsregions.Check("--"+flagRegion, c.String(flagRegion)); err != nil {
		return usageError{err.Error()}
	}
	if a := c.String(flagAccountID); !accountRE.MatchString(a) {
		return usageError{fmt.Sprintf("--%s %q must be 12 digits", flagAccountID, a)}
	}
	if c.Duration(flagLatency) < 0 || c.Duration(flagJitter) < 0 {
		return usageError{fmt.Sprintf("--%s and --%s must not be negative", flagLatency, flagJitter)}
	}
	var quotas []kmsemu.Quota
	for _, v := range c.StringSlice(flagQuota) {
		q, err := kmsemu.ParseQuota(v)
		if err != nil {
			return usageError{fmt.Sprintf("--%s: %v", flagQuota, err)}
		}
		quotas = append(quotas, q...)
	}
	pool, err := kmsemu.ParseWrappingKeyPool(c.StringSlice(flagPool))
	if err != nil {
		return usageError{fmt.Sprintf("--%s: %v", flagPool, err)}
	}
	if d := c.Duration(flagRotation); d <= 0 {
		return usageError{fmt.Sprintf("--%s must be positive, got %v", flagRotation, d)}
	}
	for _, f := range []string{flagCreating, flagUnknown} {
		if d := c.Duration(f); d < 0 {
			return usageError{fmt.Sprintf("--%s must not be negative, got %v", f, d)}
		}
	}
	if ttl := c.Duration(flagTTL); ttl <= 0 {
		return usageError{fmt.Sprintf("--%s must be positive, got %v", flagTTL, ttl)}
	}
	// The artifacts hold wrapping private keys: a directory of the user's
	// own that no one else may write, checked before serving rather than
	// at the first import.
	if dir := c.String(flagArtifactsDir); dir != "" {
		if err := safefile.StateDir("--"+flagArtifactsDir, dir); err != nil {
			return usageError{err.Error()}
		}
	}

	testKeys, err := emukeys.Open(c.String(flagTestKeys))
	if err != nil {
		return usageError{fmt.Sprintf("--%s: %v", flagTestKeys, err)}
	}

	creating := c.Duration(flagCreating)
	if creating == 0 {
		creating = -1 // Options: negative is "at once"
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	// "localhost" is resolved by the system: check what was really bound.
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		ln.Close()
		return usageError{fmt.Sprintf("--%s %q resolved to %v, which is not a loopback address", flagListen, addr, ln.Addr())}
	}

	emu := kmsemu.New(kmsemu.Options{
		Region:              c.String(flagRegion),
		AccountID:           c.String(flagAccountID),
		ImportParametersTTL: c.Duration(flagTTL),
		ArtifactsDir:        c.String(flagArtifactsDir),
		LenientPKCS8Padding: c.Bool(flagLenientPKCS8),
		TestOperations:      c.Bool(flagTestOps),
		RotationDelay:       c.Duration(flagRotation),
		ReplicaCreating:     creating,
		FreshKeyUnknownFor:  c.Duration(flagUnknown),
		Latency:             c.Duration(flagLatency),
		LatencyJitter:       c.Duration(flagJitter),
		Quotas:              quotas,
		WrappingKeyPool:     pool,
		NoPoolRefill:        !c.Bool(flagPoolRefill),
		TestKeys:            testKeys,
		Logger:              log,
	})
	defer emu.Close()
	srv := &http.Server{
		Handler:           emu,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	if len(pool) > 0 {
		log.Info("filling the wrapping key pools before serving", "pools", pool)
		if err := emu.WaitPool(ctx); err != nil {
			ln.Close()
			return fmt.Errorf("fill the wrapping key pools: %w", err)
		}
		log.Info("wrapping key pools ready", "ready", emu.PoolReady())
	}
	if _, err := fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr()); err != nil {
		ln.Close()
		return fmt.Errorf("write the listening line to stdout: %w", err)
	}
	log.Info("kms-emulator serving", "url", "http://"+ln.Addr().String(), "region", c.String(flagRegion),
		"account", c.String(flagAccountID), "importParametersTTL", c.Duration(flagTTL), "artifactsDir", c.String(flagArtifactsDir),
		"lenientPKCS8Padding", c.Bool(flagLenientPKCS8), "testOperations", c.Bool(flagTestOps),
		"latency", c.Duration(flagLatency), "latencyJitter", c.Duration(flagJitter), "quotas", c.StringSlice(flagQuota))
	if c.Bool(flagLenientPKCS8) {
		log.Warn("lenient PKCS#8 padding is on: ImportKeyMaterial accepts up to 7 zero bytes after a PKCS#8 DER, which real KMS may refuse")
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("kms-emulator stopping: signal received")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// checkLoopback refuses any --listen address but a loopback one: the
// emulator has no authentication and hands out wrapping private keys.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError{fmt.Sprintf("--%s %q: %v (want HOST:PORT, e.g. 127.0.0.1:0)", flagListen, addr, err)}
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usageError{fmt.Sprintf("--%s %q: refusing to listen on a non-loopback address; kms-emulator has no authentication, use 127.0.0.1, ::1 or localhost", flagListen, addr)}
}
