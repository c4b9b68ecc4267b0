package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/internal/clidocs"
)

// referencePath is the CLI reference, relative to the repository root.
const referencePath = "docs/cli-reference.md"

const referenceHeader = `# kmsbridge command-line reference

<!-- Generated from the CLI's own definitions by ` + "`make docs`" + ` (kmsbridge gen-docs);
do not edit: change the command's Usage, Description or flags instead. -->

Every command and flag of kmsbridge, as ` + "`kmsbridge COMMAND --help`" + ` and the man pages
(` + "`man kmsbridge-import`" + `, ...) show them.
`

// completionCommand prints a shell completion script.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: `The Debian package installs these scripts already. Otherwise, load one
into the running shell, or install it where the shell looks for completions.

Examples:
  source <(kmsbridge completion bash)
  kmsbridge completion zsh > "${fpath[1]}/_kmsbridge"
  kmsbridge completion fish > ~/.config/fish/completions/kmsbridge.fish`,
		Action: action(func(c *cliContext) error {
			if c.NArg() != 1 {
				return usageError{"completion needs one argument, the shell: bash, zsh or fish"}
			}
			script, err := clidocs.Completion(c.App, c.Args().First())
			if err != nil {
				return usageError{err.Error()}
			}
			_, err = fmt.Fprint(c.App.Writer, script)
			return err
		}),
	}
}

// genDocsCommand writes the man pages, completion scripts and CLI
// reference; make docs and the release build run it. It is hidden: users
// get these from the package.
func genDocsCommand() *cli.Command {
	return &cli.Command{
		Name:   "gen-docs",
		Hidden: true,
		Usage:  "write man pages, completion scripts and the CLI reference",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "man-dir", Usage: "write one section-1 man page per command into `DIR`"},
			&cli.StringFlag{Name: "completion-dir", Usage: "write kmsbridge.bash, _kmsbridge (zsh) and kmsbridge.fish into `DIR`"},
			&cli.StringFlag{Name: "reference", Usage: "write the Markdown CLI reference to `FILE`"},
		},
		Action: action(func(c *cliContext) error {
			app := c.App
			if dir := c.String("man-dir"); dir != "" {
				pages := clidocs.Pages(app)
				for _, p := range pages {
					if err := writeFile(filepath.Join(dir, p.Name+".1"), clidocs.Man(p, pages, "")); err != nil {
						return err
					}
				}
			}
			if dir := c.String("completion-dir"); dir != "" {
				for shell, name := range map[string]string{"bash": app.Name + ".bash", "zsh": "_" + app.Name, "fish": app.Name + ".fish"} {
					script, err := clidocs.Completion(app, shell)
					if err != nil {
						return err
					}
					if err := writeFile(filepath.Join(dir, name), []byte(script)); err != nil {
						return err
					}
				}
			}
			if path := c.String("reference"); path != "" {
				if err := writeFile(path, []byte(reference(app))); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}

// reference is the text of docs/cli-reference.md.
func reference(app *cli.Command) string {
	return clidocs.Reference(referenceHeader, clidocs.Pages(app), "")
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
