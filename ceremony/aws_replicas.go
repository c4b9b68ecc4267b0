package ceremony

import (
	"context"

	awskms "github.com/kmsbridge/kmsbridge/kmsimport/aws"
)

// ReplicaClients builds one KMS client for every replica Region the file's
// keys name, each Region once, with the file's profile and endpoint: the
// Runner's Replicas. Building a client sends no request.
//
// Their notices (settings ignored) are those of the home Region's client,
// which the caller has shown.
func ReplicaClients(ctx context.Context, f *File) ([]awskms.Regional, error) {
	var out []awskms.Regional
	seen := map[string]bool{}
	for _, k := range f.Keys {
		for _, r := range k.ReplicaRegions {
			if seen[r] {
				continue
			}
			seen[r] = true
			client, err := awskms.NewClient(ctx, f.ClientOptions(r))
			if err != nil {
				return nil, err
			}
			out = append(out, awskms.Regional{Region: r, KMS: client})
		}
	}
	return out, nil
}

// ClientOptions are the KMS client options the file gives for region: its
// profile, endpoint, endpoint opt-in and CA bundle. The file is
// authoritative: an endpoint in the environment does not apply to a file
// that names none (the client refuses it).
func (f *File) ClientOptions(region string) awskms.ClientOptions {
	return awskms.ClientOptions{Region: region, Profile: f.KMS.Profile, EndpointURL: f.KMS.Endpoint,
		AllowEndpoint: f.KMS.AllowEndpoint, CABundle: f.KMS.CABundle, InFile: true}
}
