// Command softhsm-token provisions a throwaway SoftHSM2 token in a
// directory of its own, for rehearsing a ceremony and for `make demo`. It
// prints the SOFTHSM2_CONF line the other tools need. Never use a SoftHSM2
// token for real key material.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/softhsm"
)

func main() {
	app := &cli.Command{
		Name:  "softhsm-token",
		Usage: "provision a throwaway SoftHSM2 token for rehearsals and the demo",
		Description: `Creates DIR/softhsm2.conf and DIR/tokens/, initialises one token through
C_InitToken and C_InitPIN, and prints "export SOFTHSM2_CONF=DIR/softhsm2.conf".
The user PIN is read from $KMSBRIDGE_PIN and the SO PIN from $KMSBRIDGE_SO_PIN.

Example:
  export KMSBRIDGE_PIN=1234 KMSBRIDGE_SO_PIN=5678
  eval "$(softhsm-token --dir /tmp/rehearsal --label ceremony)"`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Required: true, Usage: "new `DIR` for the token store (must not hold a softhsm2.conf)"},
			&cli.StringFlag{Name: "label", Value: "ceremony", Usage: "token `LABEL`"},
			&cli.StringFlag{Name: "module", Value: softhsm.DefaultModule, Usage: "SoftHSM2 library `PATH`"},
		},
		Action: func(_ context.Context, c *cli.Command) error {
			pin, so := os.Getenv("KMSBRIDGE_PIN"), os.Getenv("KMSBRIDGE_SO_PIN")
			if pin == "" || so == "" {
				return cli.Exit("softhsm-token: set KMSBRIDGE_PIN and KMSBRIDGE_SO_PIN to the user and SO PINs the new token gets", 2)
			}
			// Absolute, so that the printed SOFTHSM2_CONF still names the
			// token after the shell changes directory.
			dir, err := filepath.Abs(c.String("dir"))
			if err != nil {
				return cli.Exit("softhsm-token: --dir: "+err.Error(), 2)
			}
			tok, err := softhsm.Provision(c.String("module"), dir, c.String("label"), pin, so)
			if err != nil {
				return cli.Exit("softhsm-token: "+err.Error(), 3)
			}
			fmt.Printf("export SOFTHSM2_CONF=%s\n", tok.Conf)
			fmt.Fprintf(os.Stderr, "token %q serial %s ready in %s\n", tok.Label, tok.Serial, tok.Dir)
			return nil
		},
	}
	if err := app.Run(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
