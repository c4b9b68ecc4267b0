package main

import (
	"github.com/urfave/cli/v3"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

const flagReplicaRegion = "replica-region"

// replicaRegionFlag names the other Regions of multi-Region keys.
func replicaRegionFlag(usage string) cli.Flag {
	return &cli.StringSliceFlag{Name: flagReplicaRegion, Category: catKMS, Usage: usage}
}

// kmsClients builds one KMS client per Region: the home Region (--region or
// the AWS configuration's) first, then each --replica-region, all with the
// same profile and endpoint.
func kmsClients(c *cliContext) ([]awskms.Regional, error) {
	api, home, err := kmsClientRegion(c)
	if err != nil {
		return nil, err
	}
	out := []awskms.Regional{{Region: home, KMS: api}}
	seen := map[string]bool{home: true}
	for _, r := range c.StringSlice(flagReplicaRegion) {
		if r == "" || seen[r] {
			return nil, usageError{"--replica-region " + r + ": give each Region once, and not the home Region " + home}
		}
		seen[r] = true
		o := kmsOptions(c, r, nil)
		o.Timeout = 0
		client, err := newKMSClient(c, o)
		if err != nil {
			return nil, err
		}
		out = append(out, awskms.Regional{Region: r, KMS: client})
	}
	return out, nil
}

// tokenGiven reports whether the command line chose a token.
func tokenGiven(c *cliContext) bool {
	return c.String(flagTokenLabel) != "" || c.String(flagTokenSerial) != "" || c.IsSet(flagSlot)
}
