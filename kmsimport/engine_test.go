package kmsimport

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kmsbridge/kmsbridge/hsm"
	"github.com/kmsbridge/kmsbridge/journal"
)

// flowLog is a Flow that remembers what the engine told it.
type flowLog struct {
	done   []StepRecord
	failed []string
	made   []string
	j      *journal.Journal
}

func (f *flowLog) StepFailed(step string, err error) error {
	f.failed = append(f.failed, step)
	return RerunError(step, err, f.made, f.j)
}
func (f *flowLog) StepDone(s StepRecord) { f.done = append(f.done, s) }
func (f *flowLog) Facts() map[string]string {
	return map[string]string{"Made": strings.Join(f.made, ",")}
}
func (f *flowLog) HSMToken() hsm.TokenIdentity { return hsm.TokenIdentity{Label: "t", Serial: "0001"} }

// engineUnderTest runs steps over a fresh flow and journal, with every
// event kept.
func engineUnderTest(t *testing.T, halt func() error) (*flowLog, *[]StepEvent, Engine) {
	t.Helper()
	j, err := journal.Open(context.Background(), t.TempDir(), journal.Scope{TokenSerial: "0001", Target: "engine-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	f := &flowLog{j: j}
	var events []StepEvent
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := Engine{Flow: f, Journal: j, Command: "import", Halt: halt,
		Observe: func(ev StepEvent) { events = append(events, ev) },
		Now:     func() time.Time { clock = clock.Add(time.Second); return clock }}
	return f, &events, e
}

func said(s string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return s, nil }
}

func eventNames(evs []StepEvent) []string {
	var out []string
	for _, ev := range evs {
		name := ev.Step
		if ev.Err != nil {
			name += "!"
		}
		out = append(out, name)
	}
	return out
}

func notes(j *journal.Journal) []string {
	var out []string
	for _, e := range j.Entries() {
		if e.Kind == journal.KindNote {
			out = append(out, fmt.Sprintf("%s %s BeforeStep=%s DuringStep=%s", e.Command, e.Op, e.Facts["BeforeStep"], e.Facts["DuringStep"]))
		}
	}
	return out
}

// TestEngineRecordsStepsInOrder: every step that ran is recorded and
// reported once, in the order run, each with its own summary and time; a
// skipped step and a step with nothing to do are neither.
func TestEngineRecordsStepsInOrder(t *testing.T) {
	f, events, e := engineUnderTest(t, nil)
	var ran []string
	step := func(name, summary string) Step {
		return Step{Name: name, Run: func(context.Context) (string, error) { ran = append(ran, name); return summary, nil }}
	}
	steps := []Step{step("a", "did a"), {Name: "b", Run: said("never"), Skip: true}, step("c", NotNeeded), step("d", "did d")}
	if err := e.Run(context.Background(), steps); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "c", "d"}; !slices.Equal(ran, want) {
		t.Fatalf("ran %v, want %v", ran, want)
	}
	if len(f.done) != 2 || f.done[0].Name != "a" || f.done[0].Summary != "did a" || f.done[1].Name != "d" || f.done[1].Summary != "did d" {
		t.Fatalf("recorded %+v, want a then d", f.done)
	}
	if !f.done[0].Time.Before(f.done[1].Time) || f.done[0].Time.Location() != time.UTC {
		t.Errorf("step times %v, %v: want increasing, UTC", f.done[0].Time, f.done[1].Time)
	}
	if got := eventNames(*events); !slices.Equal(got, []string{"a", "d"}) {
		t.Errorf("events %v, want [a d]", got)
	}
	if ev := (*events)[0]; ev.Token == nil || ev.Token.Serial != "0001" || ev.Summary != "did a" {
		t.Errorf("event %+v: want the token and the summary", ev)
	}
	if len(f.failed) != 0 {
		t.Errorf("StepFailed called for %v", f.failed)
	}
}

// TestEngineFailureSaysWhatExists: a failing step stops the flow, the
// error is the flow's *StepError (what exists, how to finish), and it is
// reported as that step's failure.
func TestEngineFailureSaysWhatExists(t *testing.T) {
	f, events, e := engineUnderTest(t, nil)
	boom := errors.New("boom")
	later := false
	err := e.Run(context.Background(), []Step{
		{Name: "make", Run: func(context.Context) (string, error) { f.made = append(f.made, "key K"); return "made K", nil }},
		{Name: "break", Run: func(context.Context) (string, error) { return "", boom }},
		{Name: "later", Run: func(context.Context) (string, error) { later = true; return "x", nil }},
	})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "break" || !errors.Is(err, boom) {
		t.Fatalf("error %v: want the *StepError of step break wrapping the cause", err)
	}
	if later {
		t.Error("a step after the failure ran")
	}
	msg := err.Error()
	for _, want := range []string{"What exists now: key K.", "To finish: " + ResumeByRerun, "Journal of intents: "} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if got := eventNames(*events); !slices.Equal(got, []string{"make", "break!"}) {
		t.Errorf("events %v, want [make break!]", got)
	}
	if (*events)[1].Err != err {
		t.Error("the failure event does not carry the error the command returns")
	}
	if n := notes(e.Journal); len(n) != 0 {
		t.Errorf("a plain failure wrote notes %v", n)
	}
}

// TestEngineNothingMadeNothingToFinish: a failure before any change says
// so, and gives no command to finish with.
func TestEngineNothingMadeNothingToFinish(t *testing.T) {
	_, _, e := engineUnderTest(t, nil)
	err := e.Run(context.Background(), []Step{{Name: "check", Run: func(context.Context) (string, error) { return "", ErrInvalidInput }}})
	msg := err.Error()
	if !strings.Contains(msg, "Nothing was changed") || strings.Contains(msg, "To finish") || strings.Contains(msg, "Journal of intents") {
		t.Errorf("message %q: want nothing changed, nothing to finish", msg)
	}
}

// TestEngineStopsBetweenStepsAtASignal: a signal that arrives while a
// step runs, which that step completes, stops the flow before the next
// one, noted in the journal and reported as an interruption.
func TestEngineStopsBetweenStepsAtASignal(t *testing.T) {
	f, events, e := engineUnderTest(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	second := false
	err := e.Run(ctx, []Step{
		{Name: "first", Run: func(context.Context) (string, error) { cancel(); return "done anyway", nil }},
		{Name: "second", Run: func(context.Context) (string, error) { second = true; return "x", nil }},
	})
	if second {
		t.Fatal("the step after the signal ran")
	}
	var se *StepError
	if !errors.Is(err, ErrInterrupted) || !errors.As(err, &se) || se.Step != "second" {
		t.Fatalf("error %v: want ErrInterrupted before step second", err)
	}
	if len(f.done) != 1 || f.done[0].Name != "first" {
		t.Errorf("recorded %+v, want first only", f.done)
	}
	if got := eventNames(*events); !slices.Equal(got, []string{"first", StepInterrupted + "!"}) {
		t.Errorf("events %v", got)
	}
	if got := notes(e.Journal); !slices.Equal(got, []string{"import interrupted BeforeStep=second DuringStep="}) {
		t.Errorf("journal notes %v", got)
	}
}

// TestEngineSignalDuringAStep: a step that fails because a signal
// arrived fails as interrupted, whatever its own error says.
func TestEngineSignalDuringAStep(t *testing.T) {
	_, events, e := engineUnderTest(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cause := errors.New("connection closed")
	err := e.Run(ctx, []Step{{Name: "call", Run: func(context.Context) (string, error) { cancel(); return "", cause }}})
	if !errors.Is(err, ErrInterrupted) || !errors.Is(err, cause) {
		t.Fatalf("error %v: want ErrInterrupted wrapping the step's own error", err)
	}
	if got := eventNames(*events); !slices.Equal(got, []string{"call!", StepInterrupted + "!"}) {
		t.Errorf("events %v", got)
	}
	if got := notes(e.Journal); !slices.Equal(got, []string{"import interrupted BeforeStep= DuringStep=call"}) {
		t.Errorf("journal notes %v", got)
	}
}

// TestEngineHalts: when Halt says the record cannot be written, the flow
// stops before its next change.
func TestEngineHalts(t *testing.T) {
	calls := 0
	_, _, e := engineUnderTest(t, func() error {
		calls++
		if calls == 2 {
			return errors.New("disk full")
		}
		return nil
	})
	third := false
	err := e.Run(context.Background(), []Step{
		{Name: "one", Run: said("1")}, {Name: "two", Run: said("2")},
		{Name: "three", Run: func(context.Context) (string, error) { third = true; return "3", nil }},
	})
	var se *StepError
	if third || !errors.Is(err, ErrJournal) || !errors.As(err, &se) || se.Step != "two" || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("third ran: %v; error %v: want ErrJournal after step two, before three", third, err)
	}
}

// runnerShape reports why decl is a step runner of its own, or "": a
// struct with a field of a step's function type, a loop that runs such
// functions, or a StepRecord or StepEvent made by hand. Those belong to
// the engine alone.
func runnerShape(file *ast.File) []string {
	var found []string
	isStepFunc := func(e ast.Expr) bool {
		ft, ok := e.(*ast.FuncType)
		if !ok || ft.Params == nil || len(ft.Params.List) != 1 || ft.Results == nil || len(ft.Results.List) != 2 {
			return false
		}
		sel, ok := ft.Params.List[0].Type.(*ast.SelectorExpr)
		r0, ok0 := ft.Results.List[0].Type.(*ast.Ident)
		r1, ok1 := ft.Results.List[1].Type.(*ast.Ident)
		return ok && sel.Sel.Name == "Context" && ok0 && r0.Name == "string" && ok1 && r1.Name == "error"
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.TypeSpec:
			if st, ok := n.Type.(*ast.StructType); ok {
				for _, f := range st.Fields.List {
					if isStepFunc(f.Type) {
						found = append(found, "type "+n.Name.Name+" holds step functions")
					}
				}
			}
		case *ast.CompositeLit:
			name := ""
			switch t := n.Type.(type) {
			case *ast.Ident:
				name = t.Name
			case *ast.SelectorExpr:
				name = t.Sel.Name
			}
			if name == "StepRecord" || name == "StepEvent" {
				found = append(found, "makes a "+name)
			}
		case *ast.CallExpr:
			fun := n.Fun
			if sel, ok := fun.(*ast.SelectorExpr); ok {
				fun = sel.Sel
			}
			if id, ok := fun.(*ast.Ident); ok && id.Name == "CrashAt" && len(n.Args) == 1 {
				if b, ok := n.Args[0].(*ast.BinaryExpr); ok {
					if lit, ok := b.X.(*ast.BasicLit); ok && lit.Value == `"step:"` {
						found = append(found, "has a step crash point")
					}
				}
			}
		}
		return true
	})
	return found
}

// ownRunnerAllowed are the exceptions, by file and finding, with their
// reasons. An entry no longer used fails the test too.
var ownRunnerAllowed = map[string]string{
	"kmsimport/aws/renewflow.go makes a StepRecord":                                        "renew takes up a verification an earlier run of the same material already did, and records it under the verify step's name",
	"kmsimport/aws/steps.go declares runSteps, a step runner's part: use kmsimport.Engine": "AWS's run hands its steps to the engine (Engine.Run over the run); it runs none itself",
	"kmsimport/aws/steps.go declares emit, a step runner's part: use kmsimport.Engine":     "AWS's run reports a replica's part of a step through Engine.Emit",
	"kmsimport/aws/result.go declares fail, a step runner's part: use kmsimport.Engine":    "AWS's run is the engine's Flow: fail is its StepFailed, which adds what exists to AWS's Result",
}

// TestNoFlowRunsItsOwnSteps fails when a package under kmsimport/ (AWS's
// flows, a cloud's sub-package, one added later) runs steps any other way
// than through the engine: a step type of its own, a StepRecord or
// StepEvent made by hand, a step crash point, or a runner's usual names
// in a cloud package. It scans every file, so new code is caught.
func TestNoFlowRunsItsOwnSteps(t *testing.T) {
	used := map[string]bool{}
	for rel, f := range sourceFiles(t, "kmsimport") {
		if rel == "kmsimport/engine.go" {
			continue
		}
		findings := runnerShape(f)
		if path.Dir(rel) != "kmsimport" {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if slices.Contains([]string{"runSteps", "emit", "fail"}, d.Name.Name) {
						findings = append(findings, "declares "+d.Name.Name+", a step runner's part: use kmsimport.Engine")
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						if ts, ok := s.(*ast.TypeSpec); ok && strings.EqualFold(ts.Name.Name, "step") {
							findings = append(findings, "declares type "+ts.Name.Name+": use kmsimport.Step")
						}
					}
				}
			}
		}
		for _, what := range findings {
			key := rel + " " + what
			if _, ok := ownRunnerAllowed[key]; ok {
				used[key] = true
				continue
			}
			t.Errorf("%s: %s; run steps with kmsimport.Engine (engine.go), the one step runner", rel, what)
		}
	}
	for k := range ownRunnerAllowed {
		if !used[k] {
			t.Errorf("allowed exception %q is no longer used: remove it", k)
		}
	}
}

// sourceFiles parses every non-test Go file under dirs (from the module
// root), by path from the root; it fails the test when the walk finds
// too few to be the tree.
func sourceFiles(t *testing.T, dirs ...string) map[string]*ast.File {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
			files[filepath.ToSlash(rel)] = f
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 20*len(dirs) {
		t.Fatalf("parsed %d files under %v: the walk missed the tree", len(files), dirs)
	}
	return files
}

// TestRunnerShapeCatchesACopy proves the check can fail: a cloud
// package's own runner, as gcp and azure once had, is found.
func TestRunnerShapeCatchesACopy(t *testing.T) {
	src := `package cloud
import ("context"; "github.com/kmsbridge/kmsbridge/kmsimport")
type step struct { name string; fn func(context.Context) (string, error) }
func run(ctx context.Context, steps []step) (out []kmsimport.StepRecord) {
	for _, s := range steps { sum, _ := s.fn(ctx); out = append(out, kmsimport.StepRecord{Name: s.name, Summary: sum}) }
	return out
}`
	f, err := parser.ParseFile(token.NewFileSet(), "copy.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := runnerShape(f)
	if len(got) != 2 {
		t.Fatalf("found %v: want the step type and the hand-made StepRecord", got)
	}
}
