package main

import (
	"context"

	"github.com/urfave/cli/v3"
)

// cliContext is one run of a command, as kmsbridge's actions and the
// helpers they call read it: the command itself (its flags, c.String(...),
// and arguments, c.Args()), the context it runs under (cancelled by SIGINT
// or SIGTERM), and the program, the root command, whose Writer, ErrWriter
// and Metadata the whole run shares. One value carries the three, so a
// helper takes c and nothing else from urfave/cli.
type cliContext struct {
	*cli.Command
	Context context.Context
	App     *cli.Command
}

// action makes run a urfave/cli action.
func action(run func(c *cliContext) error) cli.ActionFunc {
	return func(ctx context.Context, cmd *cli.Command) error {
		return run(newCLIContext(ctx, cmd))
	}
}

func newCLIContext(ctx context.Context, cmd *cli.Command) *cliContext {
	return &cliContext{Command: cmd, Context: ctx, App: cmd.Root()}
}
