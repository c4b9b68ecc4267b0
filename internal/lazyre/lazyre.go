// Package lazyre is a regular expression compiled on first use instead of
// at package initialisation.
//
// kmsbridge is a short-lived process started thousands of times (by
// operators' scripts, by the ceremony and bulk commands' re-runs, by the
// test suite), and a package-level regexp.MustCompile costs every one of
// those processes its compile, whether or not the command uses the
// pattern: counted repetitions such as {1,63} and Unicode classes such as
// \p{L} compile into thousands of instructions (kmsimport/gcp's five
// patterns were 230 KB and 2,600 allocations at start-up). A lazyre.Regexp
// costs nothing until a method is called; each pattern is compiled at
// most once, safely from any goroutine.
//
// A bad pattern no longer fails at start-up, so MustCompileAll compiles
// every pattern made with New; a test of cmd/kmsbridge calls it, which
// covers every package the binary links.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a regular expression compiled on the first call of any of
// its methods.
type Regexp struct {
	pattern string
	once    sync.Once
	re      *regexp.Regexp
}

var (
	mu  sync.Mutex
	all []*Regexp
)

// New returns the regular expression pattern, compiled on first use
// (panicking then, as regexp.MustCompile would, if pattern is invalid).
// It is meant for package-level variables.
func New(pattern string) *Regexp {
	r := &Regexp{pattern: pattern}
	mu.Lock()
	all = append(all, r)
	mu.Unlock()
	return r
}

// Regexp is the compiled expression.
func (r *Regexp) Regexp() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.pattern) })
	return r.re
}

// String is the source text of the pattern.
func (r *Regexp) String() string { return r.pattern }

// MatchString is regexp.Regexp.MatchString.
func (r *Regexp) MatchString(s string) bool { return r.Regexp().MatchString(s) }

// FindStringSubmatch is regexp.Regexp.FindStringSubmatch.
func (r *Regexp) FindStringSubmatch(s string) []string { return r.Regexp().FindStringSubmatch(s) }

// ReplaceAllString is regexp.Regexp.ReplaceAllString.
func (r *Regexp) ReplaceAllString(src, repl string) string {
	return r.Regexp().ReplaceAllString(src, repl)
}

// Split is regexp.Regexp.Split.
func (r *Regexp) Split(s string, n int) []string { return r.Regexp().Split(s, n) }

// MustCompileAll compiles every pattern made with New so far (every
// package-level one of the packages linked into the caller) and panics
// on the first invalid one, naming it: a test calls it so that a bad
// pattern fails the build's tests, not a user's command.
func MustCompileAll() int {
	mu.Lock()
	rs := append([]*Regexp(nil), all...)
	mu.Unlock()
	for _, r := range rs {
		if _, err := regexp.Compile(r.pattern); err != nil {
			panic("lazyre: invalid pattern " + r.pattern + ": " + err.Error())
		}
		r.Regexp()
	}
	return len(rs)
}
