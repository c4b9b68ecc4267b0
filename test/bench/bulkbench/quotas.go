package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// awsPublishedQuotas are AWS KMS's default request quotas, in requests per
// second per account and Region, for the operations a bulk import sends,
// as AWS publishes them: AWS KMS Developer Guide, "Request quotas"
// (docs/kms-quotas.md, "Source, date, and where sources disagree", gives
// the page and the date it was read). They are written out here, not read
// from kmsbridge (internal/kmsquota, awskms.DefaultRateLimits), so that
// the quota run measures kmsbridge against limits it did not set: the
// emulator enforces these (its --quota), and a mistake in kmsbridge's own
// table shows as throttling instead of agreeing with itself. The
// cryptographic operations (Encrypt, Decrypt: 100,000 a second for
// symmetric keys in us-east-1) are far above what an import sends and are
// left unlimited.
var awsPublishedQuotas = map[string]float64{
	"CreateKey":              5,
	"CreateAlias":            5,
	"TagResource":            10,
	"GetParametersForImport": 1,
	"ImportKeyMaterial":      15,
	"DescribeKey":            2000,
	"ListAliases":            500,
}

// bindingOp is the operation whose quota bounds a bulk import: one call
// per key at the smallest quota.
const bindingOp = "GetParametersForImport"

// quotaArgs are the emulator's --quota flags for q, in a stable order.
func quotaArgs(q map[string]float64) []string {
	ops := make([]string, 0, len(q))
	for op := range q {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var args []string
	for _, op := range ops {
		args = append(args, "--quota", fmt.Sprintf("%s=%g", op, q[op]))
	}
	return args
}

// lowered is q with op's quota set to rps: an account whose quota is lower
// than AWS's default (other users, or AWS lowered it), which kmsbridge is
// not told.
func lowered(q map[string]float64, op string, rps float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range q {
		out[k] = v
	}
	out[op] = rps
	return out
}

// parseShares reads -quota-shares: shares of AWS's default quota, each > 0.
func parseShares(s string) []float64 {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || !(v > 0) {
			check(fmt.Errorf("-quota-shares %q: want shares of the default quota, each a number > 0, e.g. 1,0.5,0.25", s))
		}
		out = append(out, v)
	}
	return out
}

// loadAverage is the machine's load average (/proc/loadavg), for the
// report: what else the machine was doing.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
