// Package awsregions knows the AWS Regions by partition, so that a Region
// name given to kmsbridge or to its emulator (a flag, a ceremony file) is
// checked before anything is done with it: a misspelt or mis-cased Region
// is refused with the names it could have meant, instead of becoming a
// request to an endpoint that does not exist, or a journal of its own.
//
// The table is the partitions file of the AWS SDK for Go v2
// (internal/endpoints/awsrulesfn/partitions.json, aws-sdk-go-v2 v1.47.7),
// without its "-global" pseudo-Regions; docs/regions.md says how to
// update it when AWS opens a Region.
package awsregions

import (
	"fmt"
	"sort"
	"strings"
)

// Partition is one AWS partition and its Regions.
type Partition struct {
	ID      string
	Regions []string
}

// Partitions lists every partition's Regions, from the SDK's table.
var Partitions = []Partition{
	{"aws", []string{"af-south-1", "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6", "ap-southeast-7", "ca-central-1", "ca-west-1", "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "mx-central-1", "sa-east-1", "us-east-1", "us-east-2", "us-west-1", "us-west-2"}},
	{"aws-cn", []string{"cn-north-1", "cn-northwest-1"}},
	{"aws-eusc", []string{"eusc-de-east-1"}},
	{"aws-iso", []string{"us-iso-east-1", "us-iso-west-1"}},
	{"aws-iso-b", []string{"us-isob-east-1", "us-isob-west-1"}},
	{"aws-iso-e", []string{"eu-isoe-west-1"}},
	{"aws-iso-f", []string{"us-isof-east-1", "us-isof-south-1"}},
	{"aws-us-gov", []string{"us-gov-east-1", "us-gov-west-1"}},
}

var known = map[string]string{}

func init() {
	for _, p := range Partitions {
		for _, r := range p.Regions {
			known[r] = p.ID
		}
	}
}

// PartitionOf is the partition of Region name, or "" when it is not a
// Region AWS has.
func PartitionOf(name string) string { return known[name] }

// Check returns nil when name is a Region of an AWS partition, spelt as
// AWS spells it (lower case), and otherwise an error that says what is
// wrong and which Regions are close. what names the input, e.g. "--region".
func Check(what, name string) error {
	if p := Problem(name); p != "" {
		return fmt.Errorf("%s %s", what, p)
	}
	return nil
}

// Problem is "" when name is a Region of an AWS partition, and otherwise
// what is wrong with it and what to write instead.
func Problem(name string) string {
	if _, ok := known[name]; ok {
		return ""
	}
	if name == "" {
		return "is empty: give an AWS Region such as us-east-1"
	}
	if lower := strings.ToLower(strings.TrimSpace(name)); known[lower] != "" {
		return fmt.Sprintf("%q: AWS Region names are lower case: write %s", excerpt(name), lower)
	}
	msg := fmt.Sprintf("%q is not an AWS Region", excerpt(name))
	if near := nearest(strings.ToLower(name)); len(near) > 0 {
		msg += "; did you mean " + strings.Join(near, " or ") + "?"
	}
	return msg + " (kmsbridge knows the Regions listed in docs/regions.md; a Region AWS opened since needs a newer kmsbridge)"
}

// nearest returns the known Regions at the smallest edit distance from
// name, when that distance is small.
func nearest(name string) []string {
	best, out := 4, []string(nil)
	for r := range known {
		d := distance(name, r)
		switch {
		case d < best:
			best, out = d, []string{r}
		case d == best:
			out = append(out, r)
		}
	}
	sort.Strings(out)
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func excerpt(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
