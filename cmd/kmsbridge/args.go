package main

import (
	"github.com/urfave/cli/v3"
)

// configureCommands sets on every command, at any depth, what urfave/cli v3
// reads per command rather than from the program:
//   - a repeatable flag is parsed as kmsbridge always has: one value per
//     occurrence, never split at commas (so "--replica-region a,b" is refused
//     as one bad Region, not taken as two), with surrounding spaces trimmed;
//   - a usage error exits 2 with one line naming the command's --help.
func configureCommands(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.DisableSliceFlagSeparator = true
		if cmd.OnUsageError == nil {
			// A bad flag on any command, including one that only groups
			// subcommands (record, audit-key, ceremony), is a usage error:
			// exit 2 as the README's taxonomy says, not the library's 1.
			cmd.OnUsageError = onUsageError
		}
		for _, f := range cmd.Flags {
			if s, ok := f.(*cli.StringSliceFlag); ok {
				s.Config.TrimSpace = true
			}
		}
		configureCommands(cmd.Commands)
	}
}
