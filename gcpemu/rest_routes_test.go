package gcpemu

import (
	"strings"
	"testing"
)

// TestRESTRoutesCoverTheImportSurface pins the URLs of Google's REST
// reference that kmsbridge and a rehearsing user need to the RPC each must
// reach; it fails if the annotations read at start ever stop yielding one.
func TestRESTRoutesCoverTheImportSurface(t *testing.T) {
	t.Parallel()
	const ring = "/v1/projects/p1-test/locations/global/keyRings/r"
	for _, c := range []struct{ verb, path, rpc string }{
		{"POST", "/v1/projects/p1-test/locations/global/keyRings", "CreateKeyRing"},
		{"GET", "/v1/projects/p1-test/locations/global/keyRings", "ListKeyRings"},
		{"GET", ring, "GetKeyRing"},
		{"POST", ring + "/cryptoKeys", "CreateCryptoKey"},
		{"GET", ring + "/cryptoKeys", "ListCryptoKeys"},
		{"GET", ring + "/cryptoKeys/k", "GetCryptoKey"},
		{"POST", ring + "/importJobs", "CreateImportJob"},
		{"GET", ring + "/importJobs", "ListImportJobs"},
		{"GET", ring + "/importJobs/j", "GetImportJob"},
		{"POST", ring + "/cryptoKeys/k/cryptoKeyVersions:import", "ImportCryptoKeyVersion"},
		{"GET", ring + "/cryptoKeys/k/cryptoKeyVersions", "ListCryptoKeyVersions"},
		{"GET", ring + "/cryptoKeys/k/cryptoKeyVersions/1", "GetCryptoKeyVersion"},
		{"POST", ring + "/cryptoKeys/k/cryptoKeyVersions/1:destroy", "DestroyCryptoKeyVersion"},
		{"GET", ring + "/cryptoKeys/k/cryptoKeyVersions/1/publicKey", "GetPublicKey"},
		{"POST", ring + "/cryptoKeys/k:encrypt", "Encrypt"},
		{"POST", ring + "/cryptoKeys/k/cryptoKeyVersions/1:encrypt", "Encrypt"},
		{"POST", ring + "/cryptoKeys/k:decrypt", "Decrypt"},
		{"POST", ring + "/cryptoKeys/k/cryptoKeyVersions/1:macSign", "MacSign"},
		{"POST", ring + "/cryptoKeys/k/cryptoKeyVersions/1:asymmetricSign", "AsymmetricSign"},
		{"GET", "/v1/projects/p1-test/locations/global", "GetLocation"},
	} {
		var got []string
		for _, rt := range restRoutes {
			if rt.verb == c.verb && rt.path.MatchString(c.path) {
				got = append(got, rt.method[strings.LastIndex(rt.method, "/")+1:])
			}
		}
		if len(got) != 1 || got[0] != c.rpc {
			t.Errorf("%s %s reaches %v, want exactly %s", c.verb, c.path, got, c.rpc)
		}
	}
}
