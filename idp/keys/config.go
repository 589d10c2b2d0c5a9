package keys

import (
	"errors"
	"fmt"
	"time"
)

// Config is the key lifecycle as an operator sets it. The policy the manager runs and the JWKS
// cache lifetime follow from it (Policy, MaxAge), so no caller computes them.
type Config struct {
	Bits       int           // RSA modulus size: 2048, 3072 or 4096
	Rotation   time.Duration // scheduled rotation period; 0: no schedule
	JWKSMaxAge time.Duration // the JWKS cache lifetime asked for (Cache-Control: max-age)
}

// Validate reports a setting the manager cannot run with.
func (c Config) Validate() error {
	if err := checkBits(c.Bits); err != nil {
		return err
	}
	if c.Rotation < 0 || (c.Rotation > 0 && c.Rotation < time.Second) {
		return errors.New("the rotation period must be 0 (no schedule) or at least 1s")
	}
	if c.JWKSMaxAge < 0 {
		return errors.New("the JWKS max-age must not be negative")
	}
	return nil
}

func checkBits(bits int) error {
	switch bits {
	case 2048, 3072, 4096:
		return nil
	}
	return fmt.Errorf("key size must be 2048, 3072 or 4096 bits, not %d", bits)
}

// MaxAge is how long verifiers may cache the JWKS: as asked, but never longer than the rotation
// period — the lead by which a next key is published before it signs — so every cache holds a
// key before its first token.
func (c Config) MaxAge() time.Duration {
	if c.Rotation > 0 && c.Rotation < c.JWKSMaxAge {
		return c.Rotation
	}
	return c.JWKSMaxAge
}

// Policy is the lifecycle for keys that sign tokens living tokenTTL. A retired key stays
// published past its last token's expiry, for verifiers' clock leeway and for their JWKS
// caches, by twice MaxAge and a minute.
func (c Config) Policy(tokenTTL time.Duration) Policy {
	return Policy{Period: c.Rotation, TokenTTL: tokenTTL, Leeway: 2*c.MaxAge() + time.Minute}
}
