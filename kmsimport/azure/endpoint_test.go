package azure

import (
	"errors"
	"testing"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

func TestVaultURL(t *testing.T) {
	ok := map[[3]string]string{
		{"https://contoso.vault.azure.net", "", ""}:                                     "https://contoso.vault.azure.net",
		{"https://Contoso.vault.azure.net/", "", ""}:                                    "https://contoso.vault.azure.net",
		{"https://h1.managedhsm.azure.net", "", ""}:                                     "https://h1.managedhsm.azure.net",
		{"https://v.vault.azure.cn", "", ""}:                                            "https://v.vault.azure.cn",
		{"https://v.vault.usgovcloudapi.net:443", "", ""}:                               "https://v.vault.usgovcloudapi.net",
		{"", "https://127.0.0.1:8443", "https://127.0.0.1:8443"}:                        "https://127.0.0.1:8443",
		{"https://127.0.0.1:8443", "https://127.0.0.1:8443", "https://127.0.0.1:8443/"}: "https://127.0.0.1:8443",
	}
	for in, want := range ok {
		var allowed []string
		if in[2] != "" {
			allowed = []string{in[2]}
		}
		got, err := VaultURL(in[0], in[1], allowed)
		if err != nil || got != want {
			t.Errorf("VaultURL%q = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := [][3]string{
		{"https://contoso.vault.azure.net.evil.example", "", ""},
		{"https://evil.example/contoso.vault.azure.net", "", ""},
		{"https://vault.azure.net", "", ""},
		{"https://a.b.vault.azure.net", "", ""},
		{"http://contoso.vault.azure.net", "", ""},
		{"https://contoso.vault.azure.net:8443", "", ""},
		{"https://user@contoso.vault.azure.net", "", ""},
		{"https://contoso.vault.azure.net/keys/x", "", ""},
		{"", "", ""},
		{"", "https://127.0.0.1:8443", ""},
		{"", "https://127.0.0.1:8443", "https://127.0.0.1:9443"},
		{"https://contoso.vault.azure.net", "https://127.0.0.1:8443", "https://127.0.0.1:8443"},
		{"", "http://127.0.0.1:8443", "http://127.0.0.1:8443"},
	}
	for _, in := range bad {
		var allowed []string
		if in[2] != "" {
			allowed = []string{in[2]}
		}
		if got, err := VaultURL(in[0], in[1], allowed); !errors.Is(err, kmsimport.ErrInvalidInput) {
			t.Errorf("VaultURL%q = %q, %v; want refused", in, got, err)
		}
	}
}
