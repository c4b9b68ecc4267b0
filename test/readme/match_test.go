package readme

import (
	"strings"
	"testing"
)

// The comparison must be able to fail: what the README shows in its
// stable parts must be what the command prints.
func TestMatch(t *testing.T) {
	got := strings.Split(`time=2026-12-07T16:48:46.684Z level=INFO msg="opened token" label=ceremony serial=1e9da475c5327fed slot=1160937453
Import complete.
  key id                       213fd115-cc30-45eb-bc4c-355ca9e19c63
  key check value              C53C42
  endpoint                     http://127.0.0.1:37991 (NOT AWS)
payments-2026  213fd115-cc30-45eb-bc4c-355ca9e19c63  2026-12-27T00:00:00Z  19`, "\n")
	same := strings.Split(`time=2026-11-30T04:31:54.000Z level=INFO msg="opened token" label=ceremony serial=f28a415c5804d140 slot=1476710720
Import complete.
  key id                       f08acf2a-87d7-48bf-b765-464ae4b6ef5c
  key check value              8C905C
  endpoint                     http://127.0.0.1:46629 (NOT AWS)
payments-2026    f08acf2a-87d7-48bf-b765-464ae4b6ef5c   2026-12-20T00:00:00Z   12`, "\n")
	if err := match(same, got, false); err != nil {
		t.Errorf("ids, times, ports, days and spacing differ only: %v", err)
	}
	for name, want := range map[string][]string{
		"a word changed":            replace(same, 1, "Import completed."),
		"a label changed":           replace(same, 0, strings.Replace(same[0], "label=ceremony", "label=other", 1)),
		"a line missing":            append(append([]string{}, same[:2]...), same[3:]...),
		"a line more":               append(append([]string{}, same...), "Warning: something"),
		"a word in a table changed": replace(same, 5, strings.Replace(same[5], "payments-2026", "payments-2027", 1)),
	} {
		if err := match(want, got, false); err == nil {
			t.Errorf("%s: matched", name)
		}
	}
	// "..." stands for any lines; an excerpt needs its lines in order.
	if err := match([]string{same[0], "...", same[5]}, got, false); err != nil {
		t.Errorf("with ...: %v", err)
	}
	if err := match([]string{same[3], same[1]}, got, true); err == nil {
		t.Error("an excerpt out of order matched")
	}
	if err := match([]string{same[1], same[3]}, got, true); err != nil {
		t.Errorf("excerpt: %v", err)
	}
}

func replace(l []string, i int, s string) []string {
	c := append([]string{}, l...)
	c[i] = s
	return c
}

func TestCommands(t *testing.T) {
	b := block{Line: 10, Body: strings.Split(`$ export A=1
$ kmsbridge status --x \
    --y    # exit 6
out 1
out 2

$ grep x f   # excerpt
x
$ cat >f <<EOF
a: $A
EOF`, "\n")}
	cs := commands(b)
	if len(cs) != 4 {
		t.Fatalf("%d commands, want 4: %+v", len(cs), cs)
	}
	if cs[1].Exit != 6 || !cs[1].HasShown || len(cs[1].Want) != 2 || cs[1].Line != 12 {
		t.Errorf("second command: %+v", cs[1])
	}
	if !cs[2].Excerpt || cs[0].HasShown {
		t.Errorf("excerpt / no output: %+v %+v", cs[2], cs[0])
	}
	if !strings.HasSuffix(cs[3].Text, "\nEOF") || cs[3].HasShown {
		t.Errorf("here-document: %+v", cs[3])
	}
	script := commands(block{Body: []string{"# a comment", "", "make x \\", "  y", "echo z"}})
	if len(script) != 2 || script[0].Text != "make x \\\n  y" {
		t.Errorf("script: %+v", script)
	}
}

func TestParseBlocksMarkers(t *testing.T) {
	bs, err := parseBlocks("text\n<!-- readme-test: skip needs AWS -->\n\n```sh\nx\n```\n```yaml\na: 1\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Marker != (marker{"skip", "needs AWS"}) || bs[1].Marker.Kind != "" || bs[1].Info != "yaml" {
		t.Errorf("%+v", bs)
	}
	if _, err := parseBlocks("<!-- readme-test skip -->\n```\nx\n```\n"); err == nil {
		t.Error("a misspelt marker was accepted")
	}
}

// A block that neither runs nor says why not fails the README test.
func TestCheckMarkers(t *testing.T) {
	bs, err := parseBlocks("```yaml\na: 1\n```\n<!-- readme-test: skip -->\n```\nx\n```\n<!-- readme-test: maybe x -->\n```\nx\n```\n" +
		"<!-- readme-test: file a.yaml -->\n```yaml\na: 1\n```\n<!-- readme-test: skip needs AWS -->\n```\nx\n```\n```console\n$ x\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	errs := checkMarkers(bs)
	if len(errs) != 3 {
		t.Fatalf("%d problems, want 3 (unmarked yaml, skip without reason, unknown marker): %v", len(errs), errs)
	}
	for i, want := range []string{"neither runs nor is marked", "needs its reason", "unknown readme-test marker"} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("problem %d: %v, want %q", i, errs[i], want)
		}
	}
}
