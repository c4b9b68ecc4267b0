// Package kmsquota is AWS KMS's table of default request quotas, the one
// place both sides of kmsbridge read it: kmsimport's client-side rate
// limits (--kms-rate) and the emulator's --quota aws-defaults (kmsemu).
// The client and the emulator must agree, or the emulator would throttle
// a client that keeps to its limits, or let through a pace AWS refuses;
// so the numbers live here, in neither of them. docs/kms-quotas.md gives
// the source, its date and the choices made where versions disagree.
package kmsquota

import (
	"maps"
	"slices"
)

// Quota is one AWS KMS request quota: Operations share one budget of RPS
// requests per second, per account and Region.
type Quota struct {
	// Name is the quota's name as AWS's table and Service Quotas give it,
	// e.g. "CreateKey request rate".
	Name string
	// Operations are the API operations that count against the quota.
	Operations []string
	// RPS is the default, in requests per second.
	RPS float64
	// RegionRPS replaces RPS in the Regions it names.
	RegionRPS map[string]float64
	// Shared reports a cryptographic-operations quota, shared by the
	// operations on one type of key: an operation may count against
	// another shared quota instead, depending on the key it names.
	Shared bool
}

// perOperation are the quotas of one operation each, in requests per
// second (AWS's "<Operation> request rate" rows).
var perOperation = map[string]float64{
	"CancelKeyDeletion":         5,
	"ConnectCustomKeyStore":     5,
	"CreateAlias":               5,
	"CreateCustomKeyStore":      5,
	"CreateGrant":               50,
	"CreateKey":                 5,
	"DeleteAlias":               15,
	"DeleteCustomKeyStore":      5,
	"DeleteImportedKeyMaterial": 15,
	"DescribeCustomKeyStores":   5,
	"DescribeKey":               2000,
	"DisableKey":                5,
	"DisableKeyRotation":        5,
	"DisconnectCustomKeyStore":  5,
	"EnableKey":                 5,
	"EnableKeyRotation":         15,
	"GetKeyPolicy":              1000,
	"GetKeyRotationStatus":      1000,
	// One quota whatever the WrappingKeySpec (RSA_2048, RSA_3072,
	// RSA_4096): AWS splits GenerateDataKeyPair by key spec, not this.
	"GetParametersForImport": 1,
	"GetPublicKey":           2000,
	"ImportKeyMaterial":      15,
	"ListAliases":            500,
	"ListGrants":             100,
	"ListKeyPolicies":        100,
	"ListKeyRotations":       100,
	"ListKeys":               500,
	"ListResourceTags":       2000,
	"ListRetirableGrants":    100,
	"PutKeyPolicy":           15,
	"ReplicateKey":           5,
	"RetireGrant":            50,
	"RevokeGrant":            50,
	"RotateKeyOnDemand":      5,
	"ScheduleKeyDeletion":    15,
	"TagResource":            10,
	"UntagResource":          5,
	"UpdateAlias":            5,
	"UpdateCustomKeyStore":   5,
	"UpdateKeyDescription":   5,
	"UpdatePrimaryRegion":    5,
}

// Symmetric is the shared quota of cryptographic operations on symmetric
// keys (HMAC keys included): 10,000 per second, more in the Regions named.
func Symmetric() Quota {
	q := Quota{
		Name:       "Cryptographic operations (symmetric) request rate",
		Operations: []string{"Decrypt", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateMac", "GenerateRandom", "ReEncrypt", "VerifyMac"},
		RPS:        10000,
		RegionRPS:  map[string]float64{},
		Shared:     true,
	}
	for _, r := range []string{"us-east-2", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "eu-central-1", "eu-west-2"} {
		q.RegionRPS[r] = 20000
	}
	for _, r := range []string{"us-east-1", "us-west-2", "eu-west-1"} {
		q.RegionRPS[r] = 100000
	}
	return q
}

// Asymmetric are the shared quotas of cryptographic operations on
// asymmetric keys, one per key type (RSA; ECC and SM2; ML-DSA).
func Asymmetric() []Quota {
	return []Quota{
		{Name: "Cryptographic operations (RSA) request rate", Operations: []string{"Decrypt", "Encrypt", "ReEncrypt", "Sign", "Verify"}, RPS: 1000, Shared: true},
		{Name: "Cryptographic operations (ECC and SM2) request rate", Operations: []string{"Decrypt", "DeriveSharedSecret", "Encrypt", "ReEncrypt", "Sign", "Verify"}, RPS: 1000, Shared: true},
		{Name: "Cryptographic operations (ML-DSA) request rate", Operations: []string{"Sign", "Verify"}, RPS: 1000, Shared: true},
	}
}

// Defaults returns every default request quota kmsbridge knows: the
// per-operation quotas sorted by operation, then Symmetric, then
// Asymmetric. Each call returns a fresh copy the caller may change.
func Defaults() []Quota {
	var out []Quota
	for _, op := range slices.Sorted(maps.Keys(perOperation)) {
		out = append(out, Quota{Name: op + " request rate", Operations: []string{op}, RPS: perOperation[op]})
	}
	out = append(out, Symmetric())
	return append(out, Asymmetric()...)
}

// Lowest returns, for each operation some quota names, the smallest
// default RPS among the quotas that name it, Regions' higher values
// ignored: the rate at which one operation's requests can never exceed
// any of its quotas on its own, whatever key or Region they use.
func Lowest() map[string]float64 {
	out := map[string]float64{}
	for _, q := range Defaults() {
		for _, op := range q.Operations {
			if cur, ok := out[op]; !ok || q.RPS < cur {
				out[op] = q.RPS
			}
		}
	}
	return out
}
