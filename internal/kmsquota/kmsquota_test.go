package kmsquota

import "testing"

func TestLowest(t *testing.T) {
	got := Lowest()
	for op, want := range map[string]float64{
		"CreateKey":              5,
		"GetParametersForImport": 1,
		"ImportKeyMaterial":      15,
		"DescribeKey":            2000,
		// In the symmetric quota (10,000) and the RSA one (1,000).
		"Encrypt": 1000,
		"Decrypt": 1000,
		// Only symmetric keys compute MACs.
		"GenerateMac": 10000,
		"Sign":        1000,
	} {
		if got[op] != want {
			t.Errorf("Lowest()[%q] = %g, want %g", op, got[op], want)
		}
	}
}

func TestDefaultsAreWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, q := range Defaults() {
		if q.Name == "" || len(q.Operations) == 0 || !(q.RPS > 0) {
			t.Errorf("malformed quota %+v", q)
		}
		if seen[q.Name] {
			t.Errorf("quota %q listed twice", q.Name)
		}
		seen[q.Name] = true
		if !q.Shared && len(q.Operations) != 1 {
			t.Errorf("%q: a per-operation quota names %d operations", q.Name, len(q.Operations))
		}
		for r, rps := range q.RegionRPS {
			if rps < q.RPS {
				t.Errorf("%q in %s: %g below the default %g", q.Name, r, rps, q.RPS)
			}
		}
	}
}

func TestDefaultsIsACopy(t *testing.T) {
	d := Defaults()
	d[0].RPS = 12345
	for i := range d {
		if d[i].RegionRPS != nil {
			d[i].RegionRPS["us-east-1"] = 1
		}
	}
	if Defaults()[0].RPS == 12345 || Symmetric().RegionRPS["us-east-1"] != 100000 {
		t.Error("changing what Defaults returned changed the table")
	}
}
