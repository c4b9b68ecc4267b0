package main

import (
	"github.com/urfave/cli/v3"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

const flagKMSRate = "kms-rate"

// kmsRateFlag overrides the client-side KMS request rates.
func kmsRateFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: flagKMSRate, Category: catKMS,
		Usage: "send at most `OP=RPS` requests per second of KMS operation OP (repeatable; 0 = no limit; \"off\" = no limits). Default: AWS's default request quotas, see docs/kms-quotas.md"}
}

// kmsLimiter is the rate limiter for this command's KMS client.
func kmsLimiter(c *cliContext) (*awskms.Limiter, error) {
	rl, err := awskms.ParseRateLimits(awskms.DefaultRateLimits(), c.StringSlice(flagKMSRate))
	if err != nil {
		return nil, err
	}
	return awskms.NewLimiter(rl), nil
}
