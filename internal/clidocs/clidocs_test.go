package clidocs

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

func TestSplitExamples(t *testing.T) {
	desc, ex := splitExamples("Does a thing.\n\nExamples:\n  tool run \\\n      --flag\n  tool other\n")
	if desc != "Does a thing." || ex != "tool run \\\n    --flag\ntool other" {
		t.Errorf("splitExamples = %q, %q", desc, ex)
	}
	if desc, ex := splitExamples("No examples here.\n"); desc != "No examples here." || ex != "" {
		t.Errorf("splitExamples without examples = %q, %q", desc, ex)
	}
}

func TestTextToMarkdownKeepsIndentedLinesVerbatim(t *testing.T) {
	got := textToMarkdown("Steps, in order:\n  validate, wrap\n  import\nThen *done*.")
	want := "Steps, in order:\n\n```\nvalidate, wrap\nimport\n```\n\nThen \\*done\\*.\n"
	if got != want {
		t.Errorf("textToMarkdown = %q, want %q", got, want)
	}
}

func TestDescribeFlag(t *testing.T) {
	term, desc := describeFlag(&cli.StringFlag{Name: "record", Aliases: []string{"r"}, Sources: cli.EnvVars("X_RECORD"), Value: "a.jsonl", Usage: "append to `FILE`"})
	if term != `**\--record** *FILE*, **\-r** *FILE*` || desc != `append to FILE (default: "a.jsonl") [$X\_RECORD]` {
		t.Errorf("describeFlag = %q, %q", term, desc)
	}
}

func TestPagesNameNestedCommandsAndSkipHidden(t *testing.T) {
	app := &cli.Command{Name: "tool", Commands: []*cli.Command{
		{Name: "record", Commands: []*cli.Command{{Name: "verify", Usage: "check it"}}},
		{Name: "secret", Hidden: true},
	}}
	var names []string
	for _, p := range Pages(app) {
		names = append(names, p.Name)
	}
	if strings.Join(names, " ") != "tool tool-record tool-record-verify" {
		t.Errorf("Pages = %v", names)
	}
}
