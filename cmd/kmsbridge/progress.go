package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/kmsbridge/kmsbridge/ceremony"
)

// progress shows a bulk import as it goes: a live bar (keys done, failed
// and left, rate, ETA) when w is a terminal, else one plain line per key.
// Its methods are called one at a time (RunAll serialises them).
type progress struct {
	w                   io.Writer
	total, done, failed int
	start               time.Time
	bar                 *progressbar.ProgressBar
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, start: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(p.describe()),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("keys"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return p
}

func (p *progress) describe() string {
	return fmt.Sprintf("%d done, %d failed, %d left", p.done, p.failed, p.total-p.done-p.failed)
}

// keyDone takes one key's result.
func (p *progress) keyDone(r ceremony.BulkResult) {
	switch r.Status {
	case ceremony.StatusDone:
		p.done++
	case ceremony.StatusFailed:
		p.failed++
	}
	if p.bar != nil {
		if r.Status != ceremony.StatusDone {
			_ = p.bar.Clear()
			fmt.Fprintf(p.w, "key %d %s %s: %s\n", r.Index, r.HSMLabel, r.Status, firstLine(r.Error))
		}
		p.bar.Describe(p.describe())
		_ = p.bar.Add(1)
		return
	}
	elapsed := time.Since(p.start)
	finished := p.done + p.failed
	rate := float64(finished) / elapsed.Seconds()
	eta := "-"
	if rate > 0 {
		eta = (time.Duration(float64(p.total-finished)/rate) * time.Second).Round(time.Second).String()
	}
	what := r.KMSKeyID
	if r.Status != ceremony.StatusDone {
		what = firstLine(r.Error)
	}
	fmt.Fprintf(p.w, "key %d/%d %s %s: %s [%s, %.1f keys/s, ETA %s]\n", r.Index, p.total, r.HSMLabel, r.Status, what, p.describe(), rate, eta)
}

// finish ends the bar.
func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
