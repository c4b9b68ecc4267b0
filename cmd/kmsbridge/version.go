package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/kmsbridge/kmsbridge/internal/buildinfo"
)

func init() { cli.VersionPrinter = printVersion }

// versionOutputFlag is the program-level --output, which only --version
// reads; each command has its own --output for its result.
func versionOutputFlag() cli.Flag {
	return &cli.StringFlag{Name: flagOutput, Aliases: []string{"o"}, Value: "text", Usage: "format of --version: text or json"}
}

// printVersion prints the build identity (version, commit, dirty, Go) for
// --version, exiting 2 on an unknown --output.
func printVersion(c *cli.Context) {
	if err := buildinfo.Write(c.App.Writer, c.App.Name, c.String(flagOutput)); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", c.App.Name, err)
		os.Exit(exitInvalidInput)
	}
}
