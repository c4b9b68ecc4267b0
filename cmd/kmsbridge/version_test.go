package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestVersionPrintsTheBuildIdentity(t *testing.T) {
	for _, args := range [][]string{{"--version", "--output", "json"}, {"-o", "json", "-v"}} {
		app := newApp()
		var out bytes.Buffer
		app.Writer = &out
		if err := app.Run(context.Background(), append([]string{"kmsbridge"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var got map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v printed %q, not JSON: %v", args, out.String(), err)
		}
		for _, k := range []string{"program", "version", "commit", "dirty", "go_version"} {
			if _, ok := got[k]; !ok {
				t.Errorf("%v: JSON %v lacks %q", args, got, k)
			}
		}
	}
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := app.Run(context.Background(), []string{"kmsbridge", "--version"}); err != nil || !strings.HasPrefix(out.String(), "kmsbridge ") || !strings.Contains(out.String(), "\ncommit:") {
		t.Errorf("--version = %v, %q", err, out.String())
	}
}
