package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
)

func init() { cli.VersionPrinter = printVersion }

// flagOutput is read only by --version.
const flagOutput = "output"

// printVersion prints the build identity for --version, exiting 2 on an
// unknown --output.
func printVersion(c *cli.Context) {
	if err := buildinfo.Write(c.App.Writer, c.App.Name, c.String(flagOutput)); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", c.App.Name, err)
		os.Exit(exitInvalidInput)
	}
}
