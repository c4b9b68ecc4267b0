package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/internal/awsregions"
	"github.com/kmsbridge/kmsbridge/internal/safefile"
	"github.com/kmsbridge/kmsbridge/journal"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// Every flag value is checked before a command does anything (opens the
// token, writes a record entry, calls KMS): checkFlags runs ahead of every
// command's action (guardActions), and decides by the flag's type, so a
// numeric or duration flag added later is covered, or fails
// TestEveryNumericFlagHasARange until it has its range here.

// intRange is what a whole-number flag accepts.
type intRange struct {
	min, max int64
	unit     string
}

var intRanges = map[string]intRange{
	flagParallel: {1, int64(hsm.MaxSessions), ""},
	flagMaxKeys:  {1, 1_000_000, ""},
	flagWithin:   {0, 365, " days"},
	flagWarnDays: {0, 365, " days"},
	// Azure takes 2048, 3072 or 4096; the request check names the three.
	flagKEKSize:    {2048, 4096, " bits"},
	"expect-count": {1, math.MaxInt32, ""},
	// Slot IDs are the module's to choose: every value is one.
	flagSlot: {0, math.MaxUint32, ""},
}

// durationRange is what a duration flag accepts, and an example.
type durationRange struct {
	min, max time.Duration
	example  string
}

var durationRanges = map[string]durationRange{
	flagKMSTimeout: {time.Millisecond, time.Hour, "30s"},
	flagWait:       {time.Second, 24 * time.Hour, "10m"},
	// A PKCS#11 call: a network HSM answers in seconds; a hung call is
	// given up on after this.
	flagPKCS11Timeout: {time.Second, time.Hour, "2m"},
}

// guardActions makes every command (and subcommand) check its flags with
// checkFlags before its action runs.
func guardActions(cmds []*cli.Command) {
	for _, cmd := range cmds {
		guardActions(cmd.Commands)
		if cmd.Action == nil {
			continue
		}
		action := cmd.Action
		cmd.Action = func(ctx context.Context, run *cli.Command) error {
			if err := checkFlags(newCLIContext(ctx, run)); err != nil {
				return err
			}
			return action(ctx, run)
		}
	}
}

// checkFlags checks the value of every flag given to c's command: whole
// numbers and durations within their range (no zero or negative waits,
// counts or parallelism), Region names against AWS's partitions (case
// included), --kms-rate operation names against those kmsbridge sends,
// --wrapping-key-spec, and the state directory (--state-dir) as the
// journal will check it.
func checkFlags(c *cliContext) error {
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if !c.IsSet(name) {
			if name == flagStateDir {
				// The default state directory, when it exists already.
				if d, err := journal.DefaultDir(); err == nil {
					if err := safefile.CheckStateDir("state directory (default; --state-dir)", d); err != nil {
						return err
					}
				}
			}
			continue
		}
		switch f.(type) {
		case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
			r, ok := intRanges[name]
			if !ok {
				return fmt.Errorf("internal error: --%s has no range in intRanges", name)
			}
			var v int64
			switch f.(type) {
			case *cli.IntFlag:
				v = int64(c.Int(name))
			case *cli.Int64Flag:
				v = c.Int64(name)
			case *cli.UintFlag:
				v = int64(c.Uint(name))
			case *cli.Uint64Flag:
				v = int64(min(c.Uint64(name), math.MaxInt64))
			}
			switch {
			case (v < r.min || v > r.max) && r.max >= math.MaxInt32:
				return usageError{fmt.Sprintf("--%s %d: give a whole number, %d or more%s", name, v, r.min, r.unit)}
			case v < r.min || v > r.max:
				return usageError{fmt.Sprintf("--%s %d: give a whole number from %d to %d%s", name, v, r.min, r.max, r.unit)}
			}
		case *cli.DurationFlag:
			r, ok := durationRanges[name]
			if !ok {
				return fmt.Errorf("internal error: --%s has no range in durationRanges", name)
			}
			if d := c.Duration(name); d < r.min || d > r.max {
				return usageError{fmt.Sprintf("--%s %v: give a duration from %v to %v, such as %s", name, d, r.min, r.max, r.example)}
			}
		}
		switch name {
		case flagRegion:
			if err := awsregions.Check("--"+flagRegion, c.String(name)); err != nil {
				return usageError{err.Error()}
			}
		case flagReplicaRegion:
			for _, r := range c.StringSlice(name) {
				if err := awsregions.Check("--"+flagReplicaRegion, r); err != nil {
					return usageError{err.Error()}
				}
			}
		case flagStateDir:
			if err := safefile.CheckStateDir("state directory (--state-dir)", c.String(name)); err != nil {
				return err
			}
		case flagWrappingKeySpec:
			if _, err := awskms.ParseWrappingKeySpec(c.String(name)); err != nil {
				return err
			}
		case flagKMSRate:
			if _, err := awskms.ParseRateLimits(awskms.DefaultRateLimits(), c.StringSlice(name)); err != nil {
				return err
			}
		}
	}
	return nil
}
