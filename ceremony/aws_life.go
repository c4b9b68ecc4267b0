package ceremony

import (
	"fmt"
	"strings"

	"github.com/kmsbridge/kmsbridge/internal/awsregions"
)

// validateLife checks the fields of a key's life after the first import:
// multi-region with its replica-regions, and rotate-to.
func (k Key) validateLife(c *checker, path string) {
	switch {
	case k.MultiRegion && len(k.ReplicaRegions) == 0:
		c.add(path+".replica-regions", "is required with multi-region: true: list the Regions the key is replicated to, e.g. [us-west-2]")
	case !k.MultiRegion && len(k.ReplicaRegions) > 0:
		c.add(path+".multi-region", "must be true when replica-regions is given: only multi-Region keys have replicas")
	}
	seen := map[string]bool{}
	for i, r := range k.ReplicaRegions {
		field := fmt.Sprintf("%s.replica-regions[%d]", path, i)
		switch {
		case awsregions.Problem(r) != "":
			c.add(field, "%s", awsregions.Problem(r))
		case seen[r]:
			c.add(field, "%q is listed twice", r)
		}
		seen[r] = true
	}
	if k.RotateTo == "" {
		return
	}
	switch {
	case strings.TrimSpace(k.RotateTo) != k.RotateTo:
		c.add(path+".rotate-to", "%q has leading or trailing spaces", k.RotateTo)
	case k.RotateTo == k.HSMLabel:
		c.add(path+".rotate-to", "is the label of the new HSM key, so it must differ from hsm-label (the key being rotated away from)")
	case k.Generate != nil && *k.Generate:
		c.add(path+".generate", "must be false with rotate-to: the key being rotated exists already (rotate generates the new one)")
	case k.MultiRegion && k.KeySpec != "SYMMETRIC_DEFAULT":
		c.add(path+".rotate-to", "multi-Region %s keys cannot be rotated by kmsbridge: only SYMMETRIC_DEFAULT keys rotate on demand", k.KeySpec)
	}
}
