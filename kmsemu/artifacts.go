package kmsemu

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kmsbridge/kmsbridge/internal/safefile"
)

// importArtifact is the content of one import-NNN.json (see
// Options.ArtifactsDir). Field names and order are part of the contract with
// tests that read these files.
type importArtifact struct {
	KeyId                 string
	WrappingAlgorithm     string
	WrappingKeySpec       string
	EncryptedKeyMaterial  []byte
	WrappingPrivateKeyPEM string
	Outcome               string

	priv *rsa.PrivateKey
}

// writeArtifact writes art as the next import-NNN.json, never replacing an
// existing file. Callers hold s.mu, which orders the sequence numbers.
func (s *Server) writeArtifact(art *importArtifact) error {
	if art.priv != nil {
		der, err := x509.MarshalPKCS8PrivateKey(art.priv)
		if err != nil {
			return fmt.Errorf("encode the wrapping private key: %w", err)
		}
		art.WrappingPrivateKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	data, err := json.MarshalIndent(art, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := os.MkdirAll(s.artifacts, 0o700); err != nil {
		return err
	}
	for {
		s.artifactSeq++
		name := filepath.Join(s.artifacts, fmt.Sprintf("import-%03d.json", s.artifactSeq))
		f, err := safefile.OpenFile("--artifacts-dir file", name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // left by an earlier run: keep it, take the next number
		}
		if err != nil {
			return err
		}
		_, werr := f.Write(data)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return werr
		}
		s.log.Info("import artifact written", "file", name, "outcome", art.Outcome)
		return nil
	}
}
