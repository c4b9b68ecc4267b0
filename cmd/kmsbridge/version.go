package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
)

func init() { cli.VersionPrinter = printVersion }

// versionOutputFlag is the program-level --output, which only --version
// reads; each command has its own --output for its result (Local: the
// commands do not inherit it).
func versionOutputFlag() cli.Flag {
	return &cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Value: "text", Usage: "format of --version: text or json", Local: true}
}

// printVersion prints the build identity (version, commit, dirty, Go) for
// --version, exiting 2 on an unknown --output.
func printVersion(c *cli.Command) {
	if err := buildinfo.Write(c.Root().Writer, c.Root().Name, c.String(flagOutput)); err != nil {
		fmt.Fprintf(c.Root().ErrWriter, "%s: %v\n", c.Root().Name, err)
		os.Exit(exitInvalidInput)
	}
}
