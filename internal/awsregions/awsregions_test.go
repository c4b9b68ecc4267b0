package awsregions

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct{ name, want string }{
		{"us-east-1", ""},
		{"eu-west-3", ""},
		{"us-gov-west-1", ""},
		{"cn-north-1", ""},
		{"US-EAST-1", "lower case: write us-east-1"},
		{"Us-East-1", "lower case: write us-east-1"},
		{"us-east-9", "is not an AWS Region; did you mean"},
		{"bogus", "is not an AWS Region"},
		{"us-esat-1", "did you mean us-east-1"},
		{"", "is empty"},
		{"aws-global", "is not an AWS Region"},
		{"Mars", "is not an AWS Region"},
	}
	for _, tt := range tests {
		err := Check("--region", tt.name)
		if tt.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "--region") {
			t.Errorf("%q: %v, want %q", tt.name, err, tt.want)
		}
	}
}
