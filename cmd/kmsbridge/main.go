// Command kmsbridge moves key material from a PKCS#11 HSM into AWS KMS
// without the plaintext ever leaving the HSM. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
)

func newApp() *cli.Command {
	app := &cli.Command{
		Name:    "kmsbridge",
		Usage:   "import key material from a PKCS#11 HSM into AWS KMS without it ever leaving the HSM in the clear",
		Version: buildinfo.Get().Version,
		Description: `kmsbridge generates (or finds) a key inside your HSM, wraps it there under the
wrapping public key AWS KMS hands out for an import, and uploads only the
wrapped blob. The HSM keeps the master copy, so the same material can be
imported again after it expires or is deleted.

PINs are read from $KMSBRIDGE_PIN, from --pin-file, or from a no-echo prompt;
never from the command line.

Exit codes: 0 success, 1 unexpected failure, 2 invalid input (nothing changed),
3 HSM/PKCS#11 failure, 4 KMS failure, 5 verification failed; status only:
6 material expiring soon (or a rotation pending), 7 broken (see status --help).`,
		Commands: []*cli.Command{
			importCommand(),
			deleteMaterialCommand(),
			verifyCommand(),
			prepareCommand(),
			wrapCommand(),
			uploadCommand(),
			approveCommand(),
			auditKeyCommand(),
			recordCommand(),
			ceremonyCommand(),
			doctorCommand(),
			completionCommand(),
			genDocsCommand(),
			statusCommand(),
			renewCommand(),
			rotateCommand(),
		},
		Flags:                     []cli.Flag{versionOutputFlag()},
		EnableShellCompletion:     true,
		DisableSliceFlagSeparator: true,
		OnUsageError:              onUsageError,
		// Errors are printed once, by main, with their exit code.
		ExitErrHandler: func(context.Context, *cli.Command, error) {},
	}
	// urfave/cli v3 adds a hidden "completion" command of its own beside
	// kmsbridge's (which names its shells and exits 2 on another): drop it.
	app.ConfigureShellCompletionCommand = func(builtin *cli.Command) {
		app.Commands = slices.DeleteFunc(app.Commands, func(c *cli.Command) bool { return c == builtin })
	}
	guardActions(app.Commands)
	configureCommands(app.Commands)
	return app
}

func main() {
	// Before any PIN is read: no core file, not dumpable.
	if err := hardenProcess(); err != nil {
		fmt.Fprintf(os.Stderr, "kmsbridge: %v\n", err)
		os.Exit(1)
	}
	tuneMemory()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := newApp()
	err := cliUsage(app.Run(ctx, os.Args), os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsbridge: %v\n", err)
		os.Exit(exitCode(err))
	}
}
