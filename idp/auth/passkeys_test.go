package auth

import (
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// The relying party is the issuer: its host without the port is the RP id, its origin the one
// accepted; a ceremony's state is refused once expired or when it is not one.
func TestPasskeyRelyingPartyAndCeremony(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s := New(Config{Issuer: &token.Issuer{Issuer: "https://login.example.com:8443/idp"}, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rp, err := s.relyingParty()
	if err != nil {
		t.Fatal(err)
	}
	if rp.Config.RPID != "login.example.com" || !slices.Equal(rp.Config.RPOrigins, []string{"https://login.example.com:8443"}) {
		t.Fatalf("RP id %q, origins %v", rp.Config.RPID, rp.Config.RPOrigins)
	}
	c, err := s.BeginPasskeyLogin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Expires.Equal(now.Add(PasskeyCeremonyTTL)) {
		t.Fatalf("expires %v", c.Expires)
	}
	if sd, err := s.readCeremony(c.State); err != nil || sd.UserVerification != "required" || len(sd.UserID) != 0 {
		t.Fatalf("state read back: %+v %v", sd, err)
	}
	now = now.Add(PasskeyCeremonyTTL)
	if _, err := s.readCeremony(c.State); apperr.Code(err) != apperr.EUNAUTHORIZED {
		t.Fatalf("an expired ceremony: %v", err)
	}
	if _, err := s.readCeremony([]byte(`{}`)); !errors.Is(err, ErrPasskeyRefused) {
		t.Fatalf("a state without a challenge: %v", err)
	}
	if _, err := s.FinishPasskeyLogin(t.Context(), []byte("garbage"), []byte("{}")); !errors.Is(err, ErrPasskeyRefused) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestPasskeyAMR(t *testing.T) {
	if got := passkeyAMR(identity.Passkey{}); !slices.Equal(got, []string{"hwk", "user", "mfa"}) {
		t.Fatalf("a device-bound passkey: %v", got)
	}
	if got := passkeyAMR(identity.Passkey{BackupEligible: true}); !slices.Equal(got, []string{"swk", "user", "mfa"}) {
		t.Fatalf("a synced passkey: %v", got)
	}
}
