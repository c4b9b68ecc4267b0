package kmsemu

import "time"

// importAllowed refuses imports a multi-Region replica does not take.
func (s *Server) importAllowed(k *key, importType string) *apiError { return nil }

// rotationAllowed refuses on-demand rotation of a replica key.
func (s *Server) rotationAllowed(k *key) *apiError { return nil }

// pendingStateFor is the KeyMaterialState of new material pending rotation.
func (s *Server) pendingStateFor(k *key, materialID string) string { return matPendingRotation }

// onImported lets related multi-Region keys follow an import.
func (s *Server) onImported(k *key, m *keyMat) {}

// onMaterialDeleted lets related multi-Region keys follow a deletion.
func (s *Server) onMaterialDeleted(k *key, m *keyMat) {}

// onRotationCompleted lets replicas follow their primary's rotation.
func (s *Server) onRotationCompleted(k *key, m *keyMat, at time.Time) {}
