package main

import (
	"github.com/urfave/cli/v3"
)

// keepSliceValues makes every command parse a repeatable flag as kmsbridge
// always has: one value per occurrence, never split at commas (so
// "--replica-region a,b" is refused as one bad Region, not taken as two),
// with surrounding spaces trimmed. urfave/cli v3 takes the separator
// setting from each command, not the program, and trims nothing unless told.
func keepSliceValues(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.DisableSliceFlagSeparator = true
		for _, f := range cmd.Flags {
			if s, ok := f.(*cli.StringSliceFlag); ok {
				s.Config.TrimSpace = true
			}
		}
		keepSliceValues(cmd.Commands)
	}
}
