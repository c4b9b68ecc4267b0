package main

import (
	"github.com/urfave/cli/v2"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

const flagKMSRate = "kms-rate"

// kmsRateFlag overrides the client-side KMS request rates.
func kmsRateFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagKMSRate, Category: catKMS,
		Usage: "send at most `OP=RPS` requests per second of KMS operation OP (repeatable; 0 = no limit; \"off\" = no limits). Default: AWS's default request quotas, see docs/kms-quotas.md"}
}

// kmsLimiter is the rate limiter for this command's KMS client.
func kmsLimiter(c *cli.Context) (*kmsimport.Limiter, error) {
	rl, err := kmsimport.ParseRateLimits(kmsimport.DefaultRateLimits(), c.StringSlice(flagKMSRate))
	if err != nil {
		return nil, err
	}
	return kmsimport.NewLimiter(rl), nil
}
