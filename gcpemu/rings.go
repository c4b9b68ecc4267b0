package gcpemu

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"sort"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"

	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest"
	"github.com/kmsbridge/kmsbridge/kmsimport/gcp/attest/attesttest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// CreateKeyRing makes a key ring; its ID must be new in the location.
func (s *Server) CreateKeyRing(_ context.Context, req *kmspb.CreateKeyRingRequest) (*kmspb.KeyRing, error) {
	if err := checkLocation(req.GetParent()); err != nil {
		return nil, err
	}
	if !idOnlyRE.MatchString(req.GetKeyRingId()) {
		return nil, invalidArg("Invalid key ring ID %q: it must match [a-zA-Z0-9_-]{1,63}.", req.GetKeyRingId())
	}
	name := req.GetParent() + "/keyRings/" + req.GetKeyRingId()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rings[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "KeyRing %s already exists.", name)
	}
	r := &kmspb.KeyRing{Name: name, CreateTime: timestamppb.New(s.now())}
	s.rings[name] = r
	return proto.Clone(r).(*kmspb.KeyRing), nil
}

// GetKeyRing returns a key ring, or NOT_FOUND as recorded.
func (s *Server) GetKeyRing(_ context.Context, req *kmspb.GetKeyRingRequest) (*kmspb.KeyRing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := ringRE.FindStringSubmatch(req.GetName()); m != nil {
		if err := checkLocation(m[1]); err != nil {
			return nil, err
		}
	}
	r, err := s.ring(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(r).(*kmspb.KeyRing), nil
}

// importJob is an ImportJob and its wrapping private key.
type importJob struct {
	pb    *kmspb.ImportJob
	key   *rsa.PrivateKey
	ready chan struct{}
}

var methodBits = map[kmspb.ImportJob_ImportMethod]int{
	kmspb.ImportJob_RSA_OAEP_3072_SHA1_AES_256: 3072, kmspb.ImportJob_RSA_OAEP_4096_SHA1_AES_256: 4096,
	kmspb.ImportJob_RSA_OAEP_3072_SHA256_AES_256: 3072, kmspb.ImportJob_RSA_OAEP_4096_SHA256_AES_256: 4096,
	kmspb.ImportJob_RSA_OAEP_3072_SHA256: 3072, kmspb.ImportJob_RSA_OAEP_4096_SHA256: 4096,
}

// CreateImportJob returns the job PENDING_GENERATION, without public key
// or attestation, as recorded [kcc]; the key is generated in the
// background and the job turns ACTIVE when it is ready.
func (s *Server) CreateImportJob(_ context.Context, req *kmspb.CreateImportJobRequest) (*kmspb.ImportJob, error) {
	bits, ok := methodBits[req.GetImportJob().GetImportMethod()]
	if !ok {
		return nil, invalidArg("ImportJob.import_method %s is not supported.", req.GetImportJob().GetImportMethod())
	}
	pl := req.GetImportJob().GetProtectionLevel()
	if pl != kmspb.ProtectionLevel_HSM && pl != kmspb.ProtectionLevel_SOFTWARE {
		return nil, invalidArg("ImportJob.protection_level must be SOFTWARE or HSM.")
	}
	if !idOnlyRE.MatchString(req.GetImportJobId()) {
		return nil, invalidArg("Invalid import job ID %q: it must match [a-zA-Z0-9_-]{1,63}.", req.GetImportJobId())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.ring(req.GetParent()); err != nil {
		return nil, err
	}
	name := req.GetParent() + "/importJobs/" + req.GetImportJobId()
	if _, ok := s.jobs[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "ImportJob %s already exists.", name)
	}
	now := s.now()
	j := &importJob{ready: make(chan struct{}), pb: &kmspb.ImportJob{Name: name, ImportMethod: req.GetImportJob().GetImportMethod(),
		ProtectionLevel: pl, CreateTime: timestamppb.New(now), ExpireTime: timestamppb.New(now.Add(s.opts.ImportJobTTL)),
		State: kmspb.ImportJob_PENDING_GENERATION}}
	s.jobs[name] = j
	go s.generate(j, bits)
	return proto.Clone(j.pb).(*kmspb.ImportJob), nil
}

func (s *Server) generate(j *importJob, bits int) {
	k, err := s.importJobKey(bits)
	if err != nil {
		panic(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	var att *kmspb.KeyOperationAttestation
	if j.pb.GetProtectionLevel() == kmspb.ProtectionLevel_HSM {
		st := s.attestation(&k.PublicKey, bits)
		att = &kmspb.KeyOperationAttestation{Format: kmspb.KeyOperationAttestation_AttestationFormat(st.Format), Content: st.Content,
			CertChains: &kmspb.KeyOperationAttestation_CertificateChains{CaviumCerts: st.CaviumCerts,
				GoogleCardCerts: st.GoogleCardCerts, GooglePartitionCerts: st.GooglePartCerts}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j.key = k
	j.pb.GenerateTime = timestamppb.New(s.now())
	j.pb.PublicKey = &kmspb.ImportJob_WrappingPublicKey{Pem: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
	j.pb.Attestation = att
	j.pb.State = kmspb.ImportJob_ACTIVE
	close(j.ready)
}

// refresh moves a job to EXPIRED once its expire_time has passed; an
// expired job "may not leave this state" and no longer shows a public key
// ([proto]: public_key "only returned if state is ACTIVE").
func (s *Server) refresh(j *importJob) {
	now := s.now()
	if j.pb.State != kmspb.ImportJob_EXPIRED && !now.Before(j.pb.GetExpireTime().AsTime()) {
		j.pb.State = kmspb.ImportJob_EXPIRED
		j.pb.ExpireEventTime = timestamppb.New(j.pb.GetExpireTime().AsTime())
		j.pb.PublicKey = nil
	}
}

// GetImportJob returns the job as it now is.
func (s *Server) GetImportJob(_ context.Context, req *kmspb.GetImportJobRequest) (*kmspb.ImportJob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.job(req.GetName())
	if err != nil {
		return nil, err
	}
	return proto.Clone(j.pb).(*kmspb.ImportJob), nil
}

func (s *Server) job(name string) (*importJob, error) {
	m := jobRE.FindStringSubmatch(name)
	if m == nil {
		return nil, invalidArg("Resource name [%s] does not match any known type.", name)
	}
	if _, err := s.ring(m[1]); err != nil {
		return nil, err
	}
	j, ok := s.jobs[name]
	if !ok {
		return nil, notFound("ImportJob", name)
	}
	s.refresh(j)
	return j, nil
}

// ListImportJobs lists a key ring's jobs, by name.
func (s *Server) ListImportJobs(_ context.Context, req *kmspb.ListImportJobsRequest) (*kmspb.ListImportJobsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.ring(req.GetParent()); err != nil {
		return nil, err
	}
	out := &kmspb.ListImportJobsResponse{}
	for name, j := range s.jobs {
		if jobRE.FindStringSubmatch(name)[1] == req.GetParent() {
			s.refresh(j)
			out.ImportJobs = append(out.ImportJobs, proto.Clone(j.pb).(*kmspb.ImportJob))
		}
	}
	sort.Slice(out.ImportJobs, func(a, b int) bool { return out.ImportJobs[a].Name < out.ImportJobs[b].Name })
	out.TotalSize = int32(len(out.ImportJobs))
	return out, nil
}

// WaitGenerated blocks until every job's key exists (tests).
func (s *Server) WaitGenerated(timeout time.Duration) {
	s.mu.Lock()
	var chans []chan struct{}
	for _, j := range s.jobs {
		chans = append(chans, j.ready)
	}
	s.mu.Unlock()
	deadline := time.After(timeout)
	for _, c := range chans {
		select {
		case <-c:
		case <-deadline:
			return
		}
	}
}

// attestation is the statement for a job's key, spoiled as Options.Tamper
// asks (a real service cannot be made to produce these; tests need them).
func (s *Server) attestation(pub *rsa.PublicKey, bits int) attest.Statement {
	switch s.opts.Tamper {
	case TamperStatement:
		objs := attesttest.KeyPair(pub)
		signed := s.auth.SignBody(attest.Marshal(objs, 256))
		signed[40] ^= 1
		return s.auth.Statement(signed)
	case TamperWrappingKey:
		other, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			panic(err)
		}
		return s.auth.Attest(&other.PublicKey)
	case TamperExtractable:
		objs := attesttest.KeyPair(pub)
		objs[1].Attrs[attest.AttrExtractable] = []byte{1}
		return s.auth.Sign(objs)
	}
	return s.auth.Attest(pub)
}
