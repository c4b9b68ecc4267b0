package kmsemu

import (
	"math"
	"strconv"
	"time"
)

// clock is the server's notion of now: a base time source plus the offset
// that KmsBridgeAdvanceClock accumulates. Guarded by Server.mu.
type clock struct {
	base   func() time.Time
	offset time.Duration
}

func (c *clock) now() time.Time { return c.base().Add(c.offset) }

// now returns the emulated time. Callers hold s.mu.
func (s *Server) now() time.Time { return s.clock.now() }

// applyClock makes everything that was due by now happen, as KMS would have
// done in the background: imported material past its ValidTo is deleted, and
// keys past their DeletionDate are deleted with their aliases and import
// parameters, and on-demand rotations that are due complete. Every request calls it first, with s.mu held.
func (s *Server) applyClock() {
	now := s.now()
	for _, r := range s.regions {
		s.applyClockIn(r, now)
	}
	for _, r := range s.regions {
		s.applyRotations(r, now)
	}
	// A primary waiting for its replicas' deletion starts its own waiting
	// period once the last of them is gone [API ScheduleKeyDeletion].
	for _, r := range s.regions {
		for _, k := range r.keys {
			if k.awaitingReplicas && len(s.replicasOf(k)) == 0 {
				k.awaitingReplicas = false
				k.deletionDate = now.Add(time.Duration(k.pendingWindow) * 24 * time.Hour)
			}
		}
	}
}

// applyClockIn expires material and completes deletions in one Region.
func (s *Server) applyClockIn(r *regionState, now time.Time) {
	for _, k := range r.keys {
		if k.creating && !now.Before(k.creatingUntil) {
			k.creating = false
		}
		for _, m := range k.mats {
			if m.imported && m.expirationModel == expirationExpires && !now.Before(m.validTo) {
				s.log.Info("key material expired", "key", k.id, "keyMaterialId", m.id, "validTo", m.validTo.UTC().Format(time.RFC3339))
				m.unimport()
			}
		}
	}
	var kept []string
	for _, id := range r.keyOrder {
		k := r.keys[id]
		if k.pendingDeletion() && !k.awaitingReplicas && !now.Before(k.deletionDate) {
			s.log.Info("key deleted", "key", k.id)
			s.deleteKey(r, k)
			continue
		}
		kept = append(kept, id)
	}
	r.keyOrder = kept
}

type advanceClockInput struct {
	Seconds *float64
}

type advanceClockOutput struct {
	Now epochTime
}

// advanceClock implements the emulator-only KmsBridgeAdvanceClock.
func (s *Server) advanceClock(c *call, body []byte) (any, *apiError) {
	var in advanceClockInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	if in.Seconds == nil {
		v.add("Value null at 'seconds' failed to satisfy constraint: Member must not be null")
	} else if *in.Seconds < 0 || math.IsNaN(*in.Seconds) || *in.Seconds > 100*365*86400 {
		v.add("Value '" + strconv.FormatFloat(*in.Seconds, 'g', -1, 64) + "' at 'seconds' failed to satisfy constraint: Member must be between 0 and 3153600000")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	s.clock.offset += time.Duration(*in.Seconds * float64(time.Second))
	s.applyClock()
	return advanceClockOutput{Now: epochTime{s.now()}}, nil
}

// epochTime is a timestamp as awsJson1.1 carries it: a JSON number of
// seconds since the Unix epoch, with up to millisecond precision.
type epochTime struct{ time.Time }

func newEpoch(t time.Time) *epochTime { return &epochTime{t} }

// MarshalJSON writes seconds since the epoch, with milliseconds as a
// fraction when there are any (1700000000.123), like KMS.
func (t epochTime) MarshalJSON() ([]byte, error) {
	ms := t.UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

// UnmarshalJSON reads seconds since the epoch, integer or fractional.
func (t *epochTime) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return &timestampError{string(b)}
	}
	sec, frac := math.Modf(f)
	t.Time = time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC()
	return nil
}

type timestampError struct{ v string }

func (e *timestampError) Error() string {
	return "timestamp must be a JSON number of seconds since the epoch, got " + e.v
}

type setConsistencyInput struct {
	FreshKeyUnknownMillis *int64
	ReplicaCreatingMillis *int64
}

type setConsistencyOutput struct {
	FreshKeyUnknownMillis int64
	ReplicaCreatingMillis int64
}

// maxConsistencyMillis bounds KmsBridgeSetConsistency: an hour.
const maxConsistencyMillis = 3_600_000

// setConsistency implements KmsBridgeSetConsistency: it changes, for keys
// created or replicated from now on, how long a fresh key is unknown
// (Options.FreshKeyUnknownFor) and a new replica is Creating
// (Options.ReplicaCreating), so a test sharing one emulator can make KMS's
// eventual-consistency answers appear and disappear. A field left out is
// unchanged; the answer is the settings now in force.
func (s *Server) setConsistency(c *call, body []byte) (any, *apiError) {
	var in setConsistencyInput
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validator
	for name, p := range map[string]*int64{"freshKeyUnknownMillis": in.FreshKeyUnknownMillis, "replicaCreatingMillis": in.ReplicaCreatingMillis} {
		if p != nil && (*p < 0 || *p > maxConsistencyMillis) {
			v.add("Value '" + strconv.FormatInt(*p, 10) + "' at '" + name + "' failed to satisfy constraint: Member must be between 0 and 3600000")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.FreshKeyUnknownMillis != nil {
		s.freshUnknown = time.Duration(*in.FreshKeyUnknownMillis) * time.Millisecond
	}
	if in.ReplicaCreatingMillis != nil {
		s.replicaCreating = time.Duration(*in.ReplicaCreatingMillis) * time.Millisecond
	}
	return setConsistencyOutput{FreshKeyUnknownMillis: s.freshUnknown.Milliseconds(), ReplicaCreatingMillis: s.replicaCreating.Milliseconds()}, nil
}
