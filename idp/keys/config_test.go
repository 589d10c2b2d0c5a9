package keys

import (
	"testing"
	"time"
)

func TestConfigPolicy(t *testing.T) {
	for _, tc := range []struct {
		cfg        Config
		maxAge     time.Duration
		leeway     time.Duration
		invalidErr bool
	}{
		{Config{Bits: 2048, Rotation: 168 * time.Hour, JWKSMaxAge: 5 * time.Minute}, 5 * time.Minute, 11 * time.Minute, false},
		// The cache lifetime never exceeds the lead a next key is published by.
		{Config{Bits: 2048, Rotation: 2 * time.Second, JWKSMaxAge: 5 * time.Minute}, 2 * time.Second, time.Minute + 4*time.Second, false},
		{Config{Bits: 4096, JWKSMaxAge: time.Minute}, time.Minute, 3 * time.Minute, false},
		{Config{Bits: 1024, JWKSMaxAge: time.Minute}, time.Minute, 3 * time.Minute, true},
		{Config{Bits: 2048, Rotation: time.Millisecond}, 0, time.Minute, true},
		{Config{Bits: 2048, JWKSMaxAge: -time.Second}, -time.Second, time.Minute - 2*time.Second, true},
	} {
		if err := tc.cfg.Validate(); (err != nil) != tc.invalidErr {
			t.Errorf("%+v: Validate %v", tc.cfg, err)
		}
		pol := tc.cfg.Policy(15 * time.Minute)
		if tc.cfg.MaxAge() != tc.maxAge || pol.Leeway != tc.leeway || pol.Period != tc.cfg.Rotation || pol.TokenTTL != 15*time.Minute {
			t.Errorf("%+v: max-age %v, policy %+v; want max-age %v, leeway %v", tc.cfg, tc.cfg.MaxAge(), pol, tc.maxAge, tc.leeway)
		}
	}
}
