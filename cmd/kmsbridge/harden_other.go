//go:build !linux

package main

// hardenProcess does nothing outside Linux: kmsbridge is released for
// Linux only, where hardenProcess (harden_linux.go) disables core files
// and makes the process non-dumpable.
func hardenProcess() error { return nil }
