// Package keys manages the IdP's signing keys through their states (next → current → retired →
// deleted), serves the signer for new tokens and the JWKS document prepared as bytes at each
// change. The state changes are pure functions over the stored set, applied by the store in one
// transaction; RSA keys are generated before it.
package keys

import (
	"errors"
	"slices"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Policy is what the state machine needs to know.
type Policy struct {
	Period   time.Duration // scheduled rotation period; 0: no schedule
	TokenTTL time.Duration // the longest life of a token a key signed
	Leeway   time.Duration // how long past the last token's expiry a retired key stays published
}

// errNeedKey means the updater needed a fresh key that the caller did not generate beforehand
// (another process changed the set meanwhile); the caller generates one more and tries again.
var errNeedKey = errors.New("keys: a fresh key is needed")

// pool hands out pre-generated keys to a pure updater.
type pool struct{ fresh []identity.SigningKey }

func (p *pool) take() (identity.SigningKey, error) {
	if len(p.fresh) == 0 {
		return identity.SigningKey{}, errNeedKey
	}
	k := p.fresh[0]
	p.fresh = p.fresh[1:]
	return k, nil
}

func find(keys []identity.SigningKey, s identity.KeyState) int {
	return slices.IndexFunc(keys, func(k identity.SigningKey) bool { return k.State == s })
}

// Ensure returns keys with exactly one current and at least one next key, taking fresh keys
// from p as needed, and with expired retired keys dropped. It changes nothing that is already
// in order, so it is safe to apply on every start and after another process has won a race.
func Ensure(keys []identity.SigningKey, now time.Time, pol Policy, p *pool) ([]identity.SigningKey, error) {
	keys = Prune(keys, now)
	if find(keys, identity.KeyCurrent) < 0 {
		if i := find(keys, identity.KeyNext); i >= 0 {
			keys[i].State, keys[i].SignsFrom = identity.KeyCurrent, now
		} else {
			k, err := p.take()
			if err != nil {
				return nil, err
			}
			k.State, k.CreatedAt, k.SignsFrom = identity.KeyCurrent, now, now
			keys = append(keys, k)
		}
	}
	if find(keys, identity.KeyNext) < 0 {
		k, err := p.take()
		if err != nil {
			return nil, err
		}
		cur := keys[find(keys, identity.KeyCurrent)]
		k.State, k.CreatedAt, k.SignsFrom = identity.KeyNext, now, nextSigningTime(cur, now, pol)
		keys = append(keys, k)
	}
	return keys, nil
}

// nextSigningTime is when the next key is due to start signing: a period after the current key
// started, or, with no schedule, unknown until someone rotates (zero).
func nextSigningTime(cur identity.SigningKey, now time.Time, pol Policy) time.Time {
	if pol.Period <= 0 {
		return time.Time{}
	}
	t := cur.SignsFrom.Add(pol.Period)
	if t.Before(now) {
		return now
	}
	return t
}

// Rotate promotes next to current, retires current (published until its last token expires,
// plus leeway) and adds a fresh next key from p.
func Rotate(keys []identity.SigningKey, now time.Time, pol Policy, p *pool) ([]identity.SigningKey, error) {
	keys, err := Ensure(keys, now, pol, p)
	if err != nil {
		return nil, err
	}
	ci, ni := find(keys, identity.KeyCurrent), find(keys, identity.KeyNext)
	keys[ci].State = identity.KeyRetired
	keys[ci].RetiredAt = now
	keys[ci].DeleteAt = now.Add(pol.TokenTTL + pol.Leeway)
	keys[ni].State = identity.KeyCurrent
	keys[ni].SignsFrom = now
	return Ensure(keys, now, pol, p)
}

// RotateIfDue is the schedule's updater: it rotates only if the keys it is given — the stored
// ones, inside the transaction — are due for a rotation at now, and otherwise only puts the set
// in order (Ensure: drops the retired keys whose time has come). Deciding from the stored keys
// rather than from a process's snapshot is what makes schedulers racing each other, or racing
// an admin rotation that has just happened, rotate once per due date: the transaction after
// the winner's sees a current key that is not due yet (as Dex's errAlreadyRotated).
func RotateIfDue(keys []identity.SigningKey, now time.Time, pol Policy, p *pool) ([]identity.SigningKey, error) {
	keys, err := Ensure(keys, now, pol, p)
	if err != nil {
		return nil, err
	}
	if !Due(keys, now, pol) {
		return keys, nil
	}
	return Rotate(keys, now, pol, p)
}

// Revoke returns the updater that removes the key kid from the set, for a key that is
// compromised: it leaves the JWKS as soon as the set is stored, and its private part is deleted
// with it. Revoking the current key makes the next key, already published, sign from now on;
// revoking the current or the next key adds a fresh next key from p; revoking a retired key
// only deletes it. An unknown kid is ENOTFOUND.
func Revoke(kid string) func([]identity.SigningKey, time.Time, Policy, *pool) ([]identity.SigningKey, error) {
	return func(keys []identity.SigningKey, now time.Time, pol Policy, p *pool) ([]identity.SigningKey, error) {
		// Looked up before Ensure prunes, so a retired key past its time is still found.
		i := slices.IndexFunc(keys, func(k identity.SigningKey) bool { return k.ID == kid })
		if i < 0 {
			return nil, apperr.Errorf(apperr.ENOTFOUND, "No signing key has this kid")
		}
		keys = slices.Delete(slices.Clone(keys), i, i+1)
		// With the current key gone, Ensure promotes the next key (signing from now) and, with
		// the next key gone, it adds a fresh one, due a period after the current key started.
		return Ensure(keys, now, pol, p)
	}
}

// Due reports whether the schedule calls for a rotation at now.
func Due(keys []identity.SigningKey, now time.Time, pol Policy) bool {
	if pol.Period <= 0 {
		return false
	}
	i := find(keys, identity.KeyCurrent)
	return i < 0 || !now.Before(keys[i].SignsFrom.Add(pol.Period))
}

// Prune drops retired keys whose deletion time has come.
func Prune(keys []identity.SigningKey, now time.Time) []identity.SigningKey {
	return slices.DeleteFunc(slices.Clone(keys), func(k identity.SigningKey) bool {
		return k.State == identity.KeyRetired && !now.Before(k.DeleteAt)
	})
}

// NextEvent is the earliest time at which the set changes by itself: a scheduled rotation or a
// retired key's deletion. Zero when nothing is due.
func NextEvent(keys []identity.SigningKey, pol Policy) time.Time {
	var t time.Time
	earlier := func(c time.Time) {
		if !c.IsZero() && (t.IsZero() || c.Before(t)) {
			t = c
		}
	}
	for _, k := range keys {
		switch k.State {
		case identity.KeyCurrent:
			if pol.Period > 0 {
				earlier(k.SignsFrom.Add(pol.Period))
			}
		case identity.KeyRetired:
			earlier(k.DeleteAt)
		}
	}
	return t
}

// Plan returns when k is due to stop signing (retire) and to leave the JWKS (delete), as far as
// the state and the schedule say; zero when unknown (no schedule).
func Plan(k identity.SigningKey, pol Policy) (retires, deletes time.Time) {
	switch k.State {
	case identity.KeyRetired:
		return k.RetiredAt, k.DeleteAt
	default:
		if pol.Period <= 0 || k.SignsFrom.IsZero() {
			return time.Time{}, time.Time{}
		}
		retires = k.SignsFrom.Add(pol.Period)
		return retires, retires.Add(pol.TokenTTL + pol.Leeway)
	}
}
