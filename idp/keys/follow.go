package keys

import (
	"context"
	"time"
)

// Refresh reads the stored keys and, when another process sharing the store has changed them
// (a rotation, a revocation), replaces this manager's snapshot, so every replica serves the
// same JWKS and signs with the same current key. Unchanged keys cost one read and no parsing.
func (m *Manager) Refresh(ctx context.Context) error {
	keys, err := m.store.Keys(ctx)
	if err != nil {
		return err
	}
	if sameKeys(m.snap.Load().keys, keys) {
		return nil
	}
	return m.reload(ctx)
}

// Follow calls Refresh every interval until ctx ends: replicas notice each other's rotations
// within that bound. A failed read is logged once per outage and retried on the next tick.
func (m *Manager) Follow(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := m.Refresh(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			m.opt.Logger.Warn("cannot read the signing keys; serving the ones held", "err", err)
			failing = true
		case err == nil && failing:
			m.opt.Logger.Info("signing keys readable again")
			failing = false
		}
	}
}
