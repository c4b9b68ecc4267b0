// Package clidocs generates kmsbridge's manual pages, its CLI reference
// (docs/cli-reference.md) and its shell completion scripts from the
// urfave/cli definitions of the commands themselves, so a flag is described
// in exactly one place: its Usage string.
//
// Every command, at every depth, gets a page: "kmsbridge record verify" is
// kmsbridge-record-verify(1). A command's Description becomes the page's
// DESCRIPTION; a paragraph of it that starts with a line "Examples:" (and
// everything after) becomes EXAMPLES. Unindented lines are prose; indented
// lines are kept verbatim, as in the --help text.
package clidocs

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v3"
)

// Page is one command's documentation.
type Page struct {
	// Name is the page name: the words of the command joined by "-",
	// "kmsbridge" for the program itself.
	Name string
	// Words are the words that run the command: ["kmsbridge", "record", "verify"].
	Words []string
	// Usage, Description, ArgsUsage, Flags and Subcommands are the
	// command's (or, for the program, the app's).
	Usage, Description, ArgsUsage string
	Flags                         []cli.Flag
	Subcommands                   []*cli.Command
}

// Pages returns the program's page, then one page per visible command,
// depth first, in the order the CLI lists them. --help and --version,
// which urfave/cli adds when the program runs (--help to every command),
// are listed once, on the program's page, whether app has run or not.
func Pages(app *cli.Command) []Page {
	rootFlags := append(visible(app.Flags), cli.HelpFlag)
	if app.Version != "" && !app.HideVersion {
		rootFlags = append(rootFlags, cli.VersionFlag)
	}
	root := Page{Name: app.Name, Words: []string{app.Name}, Usage: app.Usage, Description: app.Description, Flags: rootFlags, Subcommands: visibleCommands(app.Commands)}
	if app.UsageText != "" {
		root.ArgsUsage = strings.TrimPrefix(app.UsageText, app.Name+" ")
	}
	pages := []Page{root}
	var walk func(parent []string, cmds []*cli.Command)
	walk = func(parent []string, cmds []*cli.Command) {
		for _, c := range visibleCommands(cmds) {
			words := append(slices.Clone(parent), c.Name)
			pages = append(pages, Page{Name: strings.Join(words, "-"), Words: words, Usage: c.Usage, Description: c.Description, ArgsUsage: c.ArgsUsage, Flags: visible(c.Flags), Subcommands: visibleCommands(c.Commands)})
			walk(words, c.Commands)
		}
	}
	walk(root.Words, app.Commands)
	return pages
}

func visibleCommands(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

// visible returns the flags help shows, without the --help and --version
// urfave/cli adds to a command that has run.
func visible(flags []cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		if n := f.Names()[0]; n == cli.HelpFlag.Names()[0] || n == cli.VersionFlag.Names()[0] {
			continue
		}
		out = append(out, f)
	}
	return out
}

// style says how a page is written: for md2man (definition lists, man
// cross-references) or for the reference page (lists, links).
type style int

const (
	forMan style = iota
	forReference
)

// Man returns page p as a section-1 manual page in roff. exitStatus, when
// not empty, is written as the EXIT STATUS section (prose).
func Man(p Page, all []Page, exitStatus string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%% %s 1\n\n", strings.ToUpper(p.Name))
	b.WriteString("# NAME\n\n")
	fmt.Fprintf(&b, "%s - %s\n\n", escape(p.Name), escape(p.Usage))
	writeBody(&b, p, all, exitStatus, "#", forMan)
	return md2man.Render([]byte(b.String()))
}

// Reference returns the CLI reference, every page in one Markdown file.
// header is written first, verbatim.
func Reference(header string, all []Page, exitStatus string) string {
	var b strings.Builder
	b.WriteString(header)
	for _, p := range all {
		fmt.Fprintf(&b, "\n## %s\n\n", strings.Join(p.Words, " "))
		if p.Usage != "" {
			fmt.Fprintf(&b, "%s\n\n", escape(p.Usage))
		}
		writeBody(&b, p, all, exitStatus, "###", forReference)
	}
	return b.String()
}

func writeBody(b *strings.Builder, p Page, all []Page, exitStatus, h string, st style) {
	fmt.Fprintf(b, "%s SYNOPSIS\n\n", h)
	synopsis := strings.Join(p.Words, " ")
	switch {
	case len(p.Subcommands) > 0:
		synopsis += " COMMAND [OPTIONS]"
	case len(p.Flags) > 0 && !strings.Contains(p.ArgsUsage, "[flags]") && !strings.Contains(p.ArgsUsage, "[--"):
		synopsis += " [OPTIONS]"
	}
	if a := strings.TrimSpace(strings.ReplaceAll(p.ArgsUsage, "[flags]", "[OPTIONS]")); a != "" {
		synopsis += " " + a
	}
	fmt.Fprintf(b, "```\n%s\n```\n\n", synopsis)

	desc, examples := splitExamples(p.Description)
	if desc != "" {
		fmt.Fprintf(b, "%s DESCRIPTION\n\n%s\n", h, textToMarkdown(desc))
	}
	if len(p.Subcommands) > 0 {
		fmt.Fprintf(b, "%s COMMANDS\n\n", h)
		for _, c := range p.Subcommands {
			ref := pageRef(append(slices.Clone(p.Words), c.Name), st)
			if st == forMan {
				fmt.Fprintf(b, "**%s**\n: %s, see %s\n\n", c.Name, escape(c.Usage), ref)
			} else {
				fmt.Fprintf(b, "- **%s**: %s, see %s\n", c.Name, escape(c.Usage), ref)
			}
		}
		b.WriteString("\n")
	}
	if len(p.Flags) > 0 {
		fmt.Fprintf(b, "%s OPTIONS\n\n", h)
		writeFlags(b, p.Flags, h+"#", st)
	}
	if examples != "" {
		fmt.Fprintf(b, "%s EXAMPLES\n\n%s\n", h, codeBlock(examples))
	}
	if exitStatus != "" && len(p.Words) == 1 {
		fmt.Fprintf(b, "%s EXIT STATUS\n\n%s\n\n", h, textToMarkdown(exitStatus))
	}
	if st == forMan {
		var refs []string
		for _, q := range all {
			if q.Name != p.Name && (len(q.Words) == 1 || isParent(p, q) || isParent(q, p)) {
				refs = append(refs, pageRef(q.Words, st))
			}
		}
		if len(p.Words) == 1 {
			refs = nil
			for _, q := range all[1:] {
				refs = append(refs, pageRef(q.Words, st))
			}
		}
		if len(refs) > 0 {
			fmt.Fprintf(b, "%s SEE ALSO\n\n%s\n", h, strings.Join(refs, ", "))
		}
	}
}

// isParent reports whether page a is the command directly above page b.
func isParent(a, b Page) bool {
	return len(b.Words) == len(a.Words)+1 && slices.Equal(b.Words[:len(a.Words)], a.Words)
}

// pageRef refers to the page of the command words: name(1) in a man
// page, a link to its section (GitHub's anchor for "## words") in the
// reference.
func pageRef(words []string, st style) string {
	name := strings.Join(words, "-")
	if st == forMan {
		return "**" + name + "**(1)"
	}
	return "[" + strings.Join(words, " ") + "](#" + name + ")"
}

// writeFlags writes flags grouped by category, uncategorised first, each
// group in the order the command defines its flags.
func writeFlags(b *strings.Builder, flags []cli.Flag, h string, st style) {
	var cats []string
	byCat := map[string][]cli.Flag{}
	for _, f := range flags {
		cat := ""
		if c, ok := f.(cli.CategorizableFlag); ok {
			cat = c.GetCategory()
		}
		if _, seen := byCat[cat]; !seen {
			cats = append(cats, cat)
		}
		byCat[cat] = append(byCat[cat], f)
	}
	slices.SortStableFunc(cats, func(x, y string) int {
		switch {
		case x == y:
			return 0
		case x == "":
			return -1
		case y == "":
			return 1
		}
		return 0
	})
	for _, cat := range cats {
		if cat != "" && len(cats) > 1 {
			fmt.Fprintf(b, "%s %s\n\n", h, escape(cat))
		}
		for _, f := range byCat[cat] {
			term, desc := describeFlag(f)
			if st == forMan {
				fmt.Fprintf(b, "%s\n: %s\n\n", term, desc)
			} else {
				fmt.Fprintf(b, "- %s: %s\n", term, desc)
			}
		}
		if st == forReference {
			b.WriteString("\n")
		}
	}
}

// describeFlag returns the flag's names with its value placeholder, and its
// usage with the default and the environment variables that set it.
func describeFlag(f cli.Flag) (term, desc string) {
	d, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return "**" + escape(strings.Join(f.Names(), ", ")) + "**", ""
	}
	placeholder, usage := unquoteUsage(d.GetUsage())
	if d.TakesValue() && placeholder == "" {
		placeholder = "value"
	}
	var names []string
	for _, n := range f.Names() {
		dash := "--"
		if len(n) == 1 {
			dash = "-"
		}
		s := "**" + escape(dash+n) + "**"
		if d.TakesValue() {
			s += " *" + escape(placeholder) + "*"
		}
		names = append(names, s)
	}
	desc = escape(usage)
	if d.TakesValue() {
		def := d.GetDefaultText()
		if def == "" {
			def = d.GetValue()
		}
		if def != "" && def != `""` {
			desc += " (default: " + escape(def) + ")"
		}
	}
	if env := d.GetEnvVars(); len(env) > 0 {
		desc += " [$" + escape(strings.Join(env, ", $")) + "]"
	}
	return strings.Join(names, ", "), desc
}

// splitExamples cuts description at a line "Examples:" or "Example:" and
// returns the text before it and the example lines after it, dedented.
func splitExamples(description string) (desc, examples string) {
	lines := strings.Split(strings.TrimRight(description, "\n"), "\n")
	for i, l := range lines {
		if t := strings.TrimSpace(l); t == "Examples:" || t == "Example:" {
			return strings.TrimSpace(strings.Join(lines[:i], "\n")), dedent(lines[i+1:])
		}
	}
	return strings.TrimSpace(description), ""
}

func dedent(lines []string) string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
	}
	var out []string
	for _, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		out = append(out, strings.TrimRight(l, " \t"))
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}

// textToMarkdown turns --help prose into Markdown: runs of unindented
// lines are paragraphs, runs of indented lines are kept verbatim.
func textToMarkdown(text string) string {
	var b strings.Builder
	var para, verbatim []string
	flush := func() {
		if len(para) > 0 {
			b.WriteString(escape(strings.Join(para, "\n")) + "\n\n")
			para = nil
		}
		if len(verbatim) > 0 {
			b.WriteString(codeBlock(dedent(verbatim)) + "\n")
			verbatim = nil
		}
	}
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case l[0] == ' ' || l[0] == '\t':
			if len(para) > 0 {
				flush()
			}
			verbatim = append(verbatim, l)
		default:
			if len(verbatim) > 0 {
				flush()
			}
			para = append(para, strings.TrimSpace(l))
		}
	}
	flush()
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func codeBlock(s string) string {
	return "```\n" + s + "\n```\n"
}

// escape makes s literal Markdown text.
func escape(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '\\', '*', '_', '`', '[', ']', '<', '>', '|':
			b.WriteByte('\\')
		case '#', '-', '+':
			if i == 0 || s[i-1] == '\n' {
				b.WriteByte('\\')
			}
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unquoteUsage returns the `NAME` a usage string quotes (the value's
// placeholder, as urfave/cli's help shows it) and the usage without the
// backquotes.
func unquoteUsage(usage string) (name, rest string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name = usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}
