package azure

import "testing"

func TestServiceOfChallengeResource(t *testing.T) {
	for res, want := range map[string][2]bool{
		"https://vault.azure.net":               {false, true},
		"https://managedhsm.azure.net":          {true, true},
		"https://MANAGEDHSM.azure.cn":           {true, true},
		"https://vault.usgovcloudapi.net":       {false, true},
		"https://local":                         {false, false},
		"https://vault.azure.net.attacker.test": {false, false},
		"":                                      {false, false},
	} {
		if m, k := serviceOf(res); m != want[0] || k != want[1] {
			t.Errorf("%q: managed %t known %t, want %v", res, m, k, want)
		}
	}
	if m := resourceRE.FindStringSubmatch(`Bearer authorization="https://login.microsoftonline.com/t", resource="https://managedhsm.azure.net"`); m == nil || m[1] != "https://managedhsm.azure.net" {
		t.Errorf("resource not found: %v", m)
	}
	if m := resourceRE.FindStringSubmatch(`Bearer authorization="https://login.microsoftonline.com/t", scope="https://vault.azure.net/.default"`); m == nil || m[1] != "https://vault.azure.net/.default" {
		t.Errorf("scope not found: %v", m)
	}
}
