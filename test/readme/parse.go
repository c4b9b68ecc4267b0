// Package readme runs README.md as a test: every fenced block in it is
// either executed, in document order, in one bash session set up as the
// README describes, with the output it shows compared; or written to the
// file it names; or skipped with a reason the test prints. How to mark a
// block is in readme_test.go and docs/contributing.md.
package readme

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// block is one fenced block of the README.
type block struct {
	Line   int    // 1-based line of the opening fence
	Info   string // the fence's info string (sh, console, yaml, ...)
	Marker marker // from the <!-- readme-test: ... --> comment before it
	Body   []string
}

// marker is what the comment before a block says about it.
type marker struct {
	Kind string // "", "skip", "file", "requires"
	Arg  string // the reason, the file name, the command
}

// command is one shell command of a block, with the output the README
// shows for it (console blocks only).
type command struct {
	Line     int    // README line of its first line
	Text     string // the command, continuation lines included
	Want     []string
	Exit     int  // the exit status the README says it has ("# exit 6")
	Excerpt  bool // "# excerpt": Want is a subsequence of the output
	HasShown bool // the README shows output for it
}

var markerRE = regexp.MustCompile(`^<!--\s*readme-test:\s*(\S+)\s*(.*?)\s*-->\s*$`)

// parseBlocks finds every fenced block of the README, and the marker on
// the last non-blank line before its fence.
func parseBlocks(text string) ([]block, error) {
	lines := strings.Split(text, "\n")
	var blocks []block
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "```") {
			continue
		}
		b := block{Line: i + 1, Info: strings.TrimSpace(strings.TrimPrefix(l, "```"))}
		for j := i - 1; j >= 0; j-- {
			p := strings.TrimSpace(lines[j])
			if p == "" {
				continue
			}
			if m := markerRE.FindStringSubmatch(p); m != nil {
				b.Marker = marker{Kind: m[1], Arg: m[2]}
			} else if strings.Contains(p, "readme-test") {
				return nil, fmt.Errorf("README.md:%d: %q is not a readme-test marker (<!-- readme-test: skip|file|requires ARG -->)", j+1, p)
			}
			break
		}
		j := i + 1
		for ; j < len(lines) && !strings.HasPrefix(lines[j], "```"); j++ {
			b.Body = append(b.Body, lines[j])
		}
		if j == len(lines) {
			return nil, fmt.Errorf("README.md:%d: fenced block never closed", i+1)
		}
		blocks = append(blocks, b)
		i = j
	}
	return blocks, nil
}

// shellInfo are the info strings of blocks that run as shell; a block of
// any other kind (yaml, csv, json) needs a file or skip marker.
func shellInfo(info string) bool {
	switch info {
	case "", "sh", "bash", "shell", "console", "shell-session":
		return true
	}
	return false
}

var (
	trailingComment = regexp.MustCompile(`\s#\s*(.*)$`)
	exitRE          = regexp.MustCompile(`\bexits?\s+(\d+)\b`)
)

// commands splits a shell block into its commands. A console block (one
// with "$ " prompts) gives each command the output lines under it; any
// other block is a script whose commands are its logical lines.
func commands(b block) []command {
	console := false
	for _, l := range b.Body {
		if strings.HasPrefix(l, "$ ") {
			console = true
			break
		}
	}
	var cmds []command
	for i := 0; i < len(b.Body); i++ {
		l := b.Body[i]
		line := b.Line + 1 + i
		if console && !strings.HasPrefix(l, "$ ") {
			if len(cmds) == 0 {
				continue // text before the first prompt
			}
			c := &cmds[len(cmds)-1]
			c.Want = append(c.Want, l)
			c.HasShown = true
			continue
		}
		if !console {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
		}
		text := strings.TrimPrefix(l, "$ ")
		// Continuation lines, and a here-document to its end.
		for strings.HasSuffix(text, "\\") && i+1 < len(b.Body) {
			i++
			text += "\n" + b.Body[i]
		}
		if m := regexp.MustCompile(`<<-?\s*'?"?(\w+)'?"?`).FindStringSubmatch(text); m != nil {
			for i+1 < len(b.Body) {
				i++
				text += "\n" + b.Body[i]
				if strings.TrimSpace(b.Body[i]) == m[1] {
					break
				}
			}
		}
		c := command{Line: line, Text: text}
		last := text[strings.LastIndex(text, "\n")+1:]
		if m := trailingComment.FindStringSubmatch(last); m != nil {
			if e := exitRE.FindStringSubmatch(m[1]); e != nil {
				c.Exit, _ = strconv.Atoi(e[1])
			}
			c.Excerpt = strings.Contains(m[1], "excerpt")
		}
		cmds = append(cmds, c)
	}
	for i := range cmds {
		// Blank lines at the end of an output are layout, not output.
		w := cmds[i].Want
		for len(w) > 0 && strings.TrimSpace(w[len(w)-1]) == "" {
			w = w[:len(w)-1]
		}
		cmds[i].Want = w
	}
	return cmds
}
