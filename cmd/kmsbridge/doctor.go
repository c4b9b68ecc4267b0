package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// doctorResult is what doctor prints: the slots, and for a chosen token
// the full report.
type doctorResult struct {
	Module string               `json:"Module"`
	Slots  []hsm.SlotInfo       `json:"Slots"`
	Report *awskms.DoctorReport `json:"Report,omitempty"`
	// OutstandingApprovals are the token's dual-control approvals not yet
	// used by a wrap nor revoked.
	OutstandingApprovals []hsm.Approval `json:"OutstandingApprovals,omitempty"`
}

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "list a module's tokens and what one of them can import into KMS, changing nothing",
		Description: `Run this first, before a ceremony, and attach its output to a bug report.

Without a token choice it lists the module's slots and tokens. With one
(--token-label, --token-serial, --slot or --token URI) it logs in and prints, for every KMS
key spec × wrapping algorithm × wrapping key spec, whether a key generated in
that token imports, or why not (KMS's rules, or what the token lacks), plus
whether the token supports dual control (CKA_WRAP_WITH_TRUSTED, enforced),
the HSM-side proof of each spec, and key check values. Everything is found
by reading the mechanism list and by probes on throwaway session objects that
are destroyed: nothing is created, changed or deleted on the token.

Examples:
  kmsbridge doctor --module /usr/lib/softhsm/libsofthsm2.so
  KMSBRIDGE_PIN=... kmsbridge doctor --module /usr/lib/softhsm/libsofthsm2.so --token-label ceremony -o json
  KMSBRIDGE_PIN=... kmsbridge doctor --module /usr/lib/softhsm/libsofthsm2.so --token-label ceremony --key-spec SYMMETRIC_DEFAULT --key-spec HMAC_256`,
		Flags: append(append(hsmFlags(), &cli.StringSliceFlag{Name: flagKeySpec, Category: "Key", Usage: "check only this KMS key spec (repeatable; default: every key spec KMS imports): a quicker check of the keys a ceremony will import, as a token that computes in software spends seconds generating a throwaway RSA-4096 key"}),
			outputFlags()...),
		OnUsageError: onUsageError,
		Action: action(func(c *cliContext) error {
			format, log, err := setup(c)
			if err != nil {
				return err
			}
			cfg, err := moduleConfig(c)
			if err != nil {
				return err
			}
			var only []awskms.KeySpec
			for _, name := range c.StringSlice(flagKeySpec) {
				ks, err := awskms.ParseKeySpec(name)
				if err != nil {
					return fmt.Errorf("--key-spec: %w", err)
				}
				only = append(only, ks)
			}
			res := doctorResult{Module: cfg.Path}
			chosen := c.IsSet(flagTokenLabel) || c.IsSet(flagTokenSerial) || c.IsSet(flagSlot) || c.IsSet(flagToken)
			if !chosen {
				mod, err := hsm.LoadModule(cfg)
				if err != nil {
					return err
				}
				defer mod.Close()
				if res.Slots, err = mod.Slots(); err != nil {
					return err
				}
			} else {
				s, err := openToken(c, log)
				if err != nil {
					return err
				}
				defer s.Close()
				if res.Slots, err = s.mod.Slots(); err != nil {
					return err
				}
				log.Info("probing the token with throwaway session objects; nothing on the token is changed")
				if res.Report, err = awskms.Doctor(s.tok, only...); err != nil {
					return err
				}
				if res.OutstandingApprovals, err = s.tok.Approvals(); err != nil {
					return err
				}
			}
			if format == "json" {
				return writeJSON(c.App.Writer, res)
			}
			printDoctor(c.App.Writer, res)
			return nil
		}),
	}
}

func printDoctor(w io.Writer, res doctorResult) {
	fmt.Fprintf(w, "Module %s\n", res.Module)
	for _, s := range res.Slots {
		if s.Token != nil {
			fmt.Fprintf(w, "  slot %d: token %q serial %s (%s %s, firmware %s)\n", s.Slot, s.Token.Label, s.Token.Serial, s.Token.Manufacturer, s.Token.Model, s.Token.Firmware)
		} else {
			fmt.Fprintf(w, "  slot %d: %s\n", s.Slot, s.State)
		}
	}
	r := res.Report
	if r == nil {
		fmt.Fprintln(w, "\nChoose a token (--token-label, --token-serial, --slot or --token URI) to see what it can import.")
		return
	}
	fmt.Fprintf(w, "\nToken %q serial %s (%s %s)\n", r.Token.Label, r.Token.Serial, r.Token.Manufacturer, r.Token.Model)
	fmt.Fprintf(w, "  wraps keys                %s\n", r.Wraps)
	fmt.Fprintf(w, "  generates keys            %s\n", r.Generates)
	fmt.Fprintf(w, "  dual control              %s\n", r.DualControl)
	fmt.Fprintf(w, "  AES key check value       %v\n", yesNo(r.CheckValue))
	for _, a := range []string{"CKA_LOCAL", "CKA_ALWAYS_SENSITIVE", "CKA_NEVER_EXTRACTABLE"} {
		fmt.Fprintf(w, "  provenance %-22s %s\n", a, r.Provenance[a])
	}
	fmt.Fprintln(w, "  proof of import")
	for _, spec := range awskms.KeySpecs {
		if proof, ok := r.Proof[string(spec.Name)]; ok {
			fmt.Fprintf(w, "    %-24s %s\n", spec.Name, proof)
		}
	}
	for _, a := range r.Adaptations {
		fmt.Fprintf(w, "  adaptation                %s\n", a)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note                      %s\n", n)
	}
	fmt.Fprintf(w, "  scale                     %s\n", r.Scale.Summary())
	fmt.Fprintf(w, "\n%-26s %-26s %-9s %s\n", "key spec", "wrapping algorithm", "wrap key", "result")
	for _, row := range r.Rows {
		result := "imports"
		if !row.Imports {
			result = "refused by " + row.RefusedBy + ": " + row.Reason
		}
		if len(row.Warnings) > 0 {
			result += " (warning: " + strings.Join(row.Warnings, "; ") + ")"
		}
		fmt.Fprintf(w, "%-26s %-26s %-9s %s\n", row.KeySpec, row.WrappingAlgorithm, row.WrappingKeySpec, result)
	}
	fmt.Fprintf(w, "\n%s.\n", r.Summary())
	printApprovals(w, res.OutstandingApprovals)
}

// printApprovals lists the dual-control approvals still in the token.
func printApprovals(w io.Writer, as []hsm.Approval) {
	if len(as) == 0 {
		return
	}
	fmt.Fprintf(w, "\nOutstanding dual-control approvals (each allows one more wrap; end one with kmsbridge approve --revoke --bundle FILE):\n")
	for _, a := range as {
		who := fmt.Sprintf("for the wrap of HSM key %q", a.KeyLabel)
		if a.KeyLabel == "" {
			who = fmt.Sprintf("object %q, naming no key (kmsbridge does not use it)", a.Label)
		}
		until := "until " + a.Expires.Format(time.RFC3339)
		if why := a.Usable(time.Now()); why != "" {
			until = "UNUSABLE: " + why + "; wrap refuses it (approve again to replace it, or approve --revoke to end it)"
		}
		fmt.Fprintf(w, "  wrapping key SHA-256 %x... (RSA %d) %s, %s\n", a.ID, a.ModulusBits, who, until)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
