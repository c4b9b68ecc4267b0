package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/urfave/cli/v3"
)

// flagCloud chooses the cloud import sends the HSM key to.
const flagCloud = "cloud"

// clouds are the clouds import knows: for each, the flags only it takes,
// and the AWS KMS flags that mean nothing to it (AWS takes every flag no
// other cloud owns).
var clouds = map[string]struct{ only, notAWS []string }{
	"aws":   {},
	"gcp":   {only: gcpOnlyFlags, notAWS: awsOnlyFlags},
	"azure": {only: azureOnlyFlags, notAWS: awsFlagsNotForAzure},
}

func cloudNames() string {
	names := make([]string, 0, len(clouds))
	for n := range clouds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// cloudFlag is import's --cloud.
func cloudFlag() cli.Flag {
	return &cli.StringFlag{Name: flagCloud, Value: "aws", Usage: "the cloud to import into: " + cloudNames()}
}

// importCloud reads --cloud and refuses, before anything else, a flag of
// another cloud or an AWS flag the chosen cloud has no use for.
func importCloud(c *cliContext) (string, error) {
	cloud := c.String(flagCloud)
	if cloud == "" {
		cloud = "aws"
	}
	this, ok := clouds[cloud]
	if !ok {
		return "", usageError{fmt.Sprintf("--cloud %q: choose %s", cloud, cloudNames())}
	}
	for other, o := range clouds {
		if other == cloud {
			continue
		}
		for _, f := range o.only {
			if c.IsSet(f) {
				return "", usageError{fmt.Sprintf("--%s is a flag of --cloud %s: add --cloud %s, or drop it", f, other, other)}
			}
		}
	}
	for _, f := range this.notAWS {
		if c.IsSet(f) {
			return "", usageError{fmt.Sprintf("--%s is an AWS KMS flag and means nothing with --cloud %s: see kmsbridge import --help", f, cloud)}
		}
	}
	return cloud, nil
}
