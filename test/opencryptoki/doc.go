// Package opencryptoki holds only tests: they run kmsbridge's in-process tests against
// opencryptoki's soft token in a test process of its own: once SoftHSM2 2.6
// has been loaded into a process, opencryptoki 3.8.1's C_Initialize crashes
// that process (SIGSEGV), so these tests cannot live beside the SoftHSM2
// tests of hsm/ and softhsm/ (docs/tokens.md).
package opencryptoki
