package kmsimport

import "strings"

// Command is the kmsbridge command line args, quoted for a POSIX shell, so
// a command kmsbridge prints for the operator to run (a status fix, the
// re-import after delete-material) runs exactly as printed when pasted.
func Command(args ...string) string {
	quoted := make([]string, 0, len(args)+1)
	quoted = append(quoted, "kmsbridge")
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	return strings.Join(quoted, " ")
}

// shellQuote leaves a word made only of characters no shell treats
// specially as it is, and single-quotes anything else.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
