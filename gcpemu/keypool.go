package gcpemu

import "crypto/rsa"

// importJobKey is the RSA key pair of a new ImportJob: a fresh one, as
// Cloud KMS generates per job, unless Options.TestKeys names a test key
// cache (tests and rehearsals only; see package internal/emukeys), whose
// pairs are handed out at most once per Server but may come from an
// earlier emulator run, so that a suite starting many emulators does not
// spend seconds of CPU per RSA-3072/4096 job.
func (s *Server) importJobKey(bits int) (*rsa.PrivateKey, error) {
	return s.opts.TestKeys.RSA(bits)
}
