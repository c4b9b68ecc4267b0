package ceremony

import (
	"context"

	"github.com/kmsbridge/kmsbridge/kmsimport"
)

// ReplicaClients builds one KMS client for every replica Region the file's
// keys name, each Region once, with the file's profile and endpoint: the
// Runner's Replicas. Building a client sends no request.
func ReplicaClients(ctx context.Context, f *File) ([]kmsimport.Regional, error) {
	var out []kmsimport.Regional
	seen := map[string]bool{}
	for _, k := range f.Keys {
		for _, r := range k.ReplicaRegions {
			if seen[r] {
				continue
			}
			seen[r] = true
			client, err := kmsimport.NewClient(ctx, kmsimport.ClientOptions{Region: r, Profile: f.KMS.Profile, EndpointURL: f.KMS.Endpoint})
			if err != nil {
				return nil, err
			}
			out = append(out, kmsimport.Regional{Region: r, KMS: client})
		}
	}
	return out, nil
}
