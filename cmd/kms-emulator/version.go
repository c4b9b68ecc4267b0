package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
)

func init() { cli.VersionPrinter = printVersion }

// flagOutput is read only by --version.
const flagOutput = "output"

// printVersion prints the build identity for --version, exiting 2 on an
// unknown --output.
func printVersion(c *cli.Command) {
	if err := buildinfo.Write(c.Root().Writer, c.Root().Name, c.String(flagOutput)); err != nil {
		fmt.Fprintf(c.Root().ErrWriter, "%s: %v\n", c.Root().Name, err)
		os.Exit(exitInvalidInput)
	}
}
