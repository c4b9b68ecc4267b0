package main

import (
	"strings"

	"github.com/urfave/cli/v3"
)

// positionalLast moves the positional arguments of the commands that take
// one (ceremony run FILE, record verify FILE) after their flags, so
// "ceremony run FILE --dry-run" works as people type it: urfave/cli v2
// stops reading flags at the first positional argument.
func positionalLast(app *cli.Command, args []string) []string {
	cmd, depth := findCommand(app.Commands, args[1:])
	if cmd == nil || cmd.ArgsUsage == "" {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	head := append([]string{}, args[:1+depth]...)
	var flags, positional []string
	rest := args[1+depth:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case a == "--":
			positional = append(positional, rest[i+1:]...)
			i = len(rest)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
				flags = append(flags, rest[i+1])
				i++
			}
		default:
			positional = append(positional, a)
		}
	}
	return append(append(head, flags...), positional...)
}

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

// findCommand follows args through nested commands and returns the
// deepest one named, and how many arguments named it.
func findCommand(cmds []*cli.Command, args []string) (*cli.Command, int) {
	var found *cli.Command
	depth := 0
	for depth < len(args) {
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(args[depth]) {
				next = c
			}
		}
		if next == nil {
			break
		}
		found, cmds = next, next.Commands
		depth++
	}
	return found, depth
}
