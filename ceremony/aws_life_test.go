package ceremony

import (
	"strings"
	"testing"
)

func TestLoadLifeFields(t *testing.T) {
	aes := "    valid-to: 2026-12-31\n"
	tests := []struct {
		name string
		edit [][2]string
		want string
	}{
		{"ok multi-region", [][2]string{{aes, aes + "    multi-region: true\n    replica-regions: [us-west-2, ap-southeast-1]\n"}}, ""},
		{"ok rotate-to", [][2]string{{"    generate: true\n", "    generate: false\n"}, {aes, aes + "    rotate-to: aes-2026-r2\n"}}, ""},
		{"fail multi-region without replicas", [][2]string{{aes, aes + "    multi-region: true\n"}}, "keys[0].replica-regions is required with multi-region: true"},
		{"fail replicas without multi-region", [][2]string{{aes, aes + "    replica-regions: [us-west-2]\n"}}, "keys[0].multi-region must be true when replica-regions is given"},
		{"fail replica is the home region", [][2]string{{aes, aes + "    multi-region: true\n    replica-regions: [eu-west-1]\n"}}, `keys[0].replica-regions[0]: "eu-west-1" is kms.region`},
		{"fail replica not a region", [][2]string{{aes, aes + "    multi-region: true\n    replica-regions: [mars]\n"}}, `"mars" is not an AWS Region`},
		{"fail replica misspelt", [][2]string{{aes, aes + "    multi-region: true\n    replica-regions: [us-wset-2]\n"}}, `"us-wset-2" is not an AWS Region; did you mean us-west-2`},
		{"fail replica in upper case", [][2]string{{aes, aes + "    multi-region: true\n    replica-regions: [US-WEST-2]\n"}}, `write us-west-2`},
		{"fail replica twice", [][2]string{{aes, aes + "    multi-region: true\n    replica-regions: [us-west-2, us-west-2]\n"}}, `keys[0].replica-regions[1]: "us-west-2" is listed twice`},
		{"fail rotate-to with generate", [][2]string{{aes, aes + "    rotate-to: aes-2026-r2\n"}}, "keys[0].generate must be false with rotate-to"},
		{"fail rotate-to same label", [][2]string{{"    generate: true\n", "    generate: false\n"}, {aes, aes + "    rotate-to: aes-2026\n"}}, "keys[0].rotate-to is the label of the new HSM key, so it must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			content := base
			for _, e := range tt.edit {
				if !strings.Contains(content, e[0]) {
					t.Fatalf("edit %q does not apply", e[0])
				}
				content = strings.Replace(content, e[0], e[1], 1)
			}
			f, err, msg := load(t, content)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if req, _ := f.Keys[0].Request(f); strings.Contains(tt.name, "multi-region") && !req.MultiRegion {
					t.Errorf("Request.MultiRegion false")
				}
				return
			}
			if err == nil || !strings.Contains(msg, tt.want) {
				t.Fatalf("Load: %v; want %q", msg, tt.want)
			}
		})
	}
}
