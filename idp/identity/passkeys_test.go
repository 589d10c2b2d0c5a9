package identity

import (
	"errors"
	"testing"
	"time"
)

func TestPasskeyUpdaters(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	u := User{ID: "u1", Factors: SecondFactors{TOTP: &TOTP{Secret: []byte("s"), Confirmed: true}}}
	k := Passkey{ID: []byte("cred-1"), PublicKey: []byte("pk"), Name: "laptop", CreatedAt: at}

	u, err := u.AddPasskey(k)
	if err != nil || len(u.Factors.Passkeys) != 1 {
		t.Fatalf("add: %v %+v", err, u.Factors.Passkeys)
	}
	if _, err := u.AddPasskey(k); !errors.Is(err, ErrPasskeyExists) {
		t.Fatalf("the same id twice: %v", err)
	}
	if _, err := u.AddPasskey(Passkey{ID: []byte("x")}); err == nil {
		t.Fatal("a passkey without a public key was added")
	}

	// A counter must increase; the first use may be 1 after 0.
	before := u
	u, err = u.UsePasskey(k.ID, 1, "c1", at.Add(5*time.Minute), at)
	if err != nil || u.Factors.Passkeys[0].SignCount != 1 || !u.Factors.Passkeys[0].LastUsedAt.Equal(at) {
		t.Fatalf("use: %v %+v", err, u.Factors.Passkeys[0])
	}
	if before.Factors.Passkeys[0].SignCount != 0 {
		t.Fatal("the updater changed the user it was given")
	}
	if _, err := u.UsePasskey(k.ID, 1, "c2", at.Add(5*time.Minute), at); !errors.Is(err, ErrPasskeyReplayed) {
		t.Fatalf("a counter that did not increase: %v", err)
	}
	if _, err := u.UsePasskey(k.ID, 0, "c2", at.Add(5*time.Minute), at); !errors.Is(err, ErrPasskeyReplayed) {
		t.Fatalf("a counter back at zero: %v", err)
	}
	if _, err := u.UsePasskey(k.ID, 2, "c1", at.Add(5*time.Minute), at); !errors.Is(err, ErrPasskeyReplayed) {
		t.Fatalf("a challenge used twice: %v", err)
	}
	if _, err := u.UsePasskey([]byte("nope"), 9, "c3", at, at); !errors.Is(err, ErrPasskeyNotFound) {
		t.Fatalf("an unknown passkey: %v", err)
	}

	// An authenticator whose counter stays at zero: each challenge once.
	z := Passkey{ID: []byte("cred-0"), PublicKey: []byte("pk0"), CreatedAt: at}
	if u, err = u.AddPasskey(z); err != nil {
		t.Fatal(err)
	}
	if u, err = u.UsePasskey(z.ID, 0, "z1", at.Add(5*time.Minute), at); err != nil {
		t.Fatalf("a zero counter: %v", err)
	}
	if _, err := u.UsePasskey(z.ID, 0, "z1", at.Add(5*time.Minute), at.Add(time.Minute)); !errors.Is(err, ErrPasskeyReplayed) {
		t.Fatalf("a zero-counter replay: %v", err)
	}
	// Expired challenges are forgotten (their ceremony state is refused anyway).
	later := at.Add(10 * time.Minute)
	if u, err = u.UsePasskey(z.ID, 0, "z2", later.Add(5*time.Minute), later); err != nil {
		t.Fatal(err)
	}
	if got := u.Factors.Passkeys[1].UsedChallenges; len(got) != 1 || got[0].Hash != "z2" {
		t.Fatalf("remembered challenges %+v", got)
	}

	// Disabling TOTP keeps the passkeys.
	if u, err = u.DisableTOTP(); err != nil || len(u.Factors.Passkeys) != 2 || u.Factors.TOTP != nil {
		t.Fatalf("disable totp: %v %+v", err, u.Factors)
	}

	if u, err = u.RemovePasskey(k.ID); err != nil || len(u.Factors.Passkeys) != 1 || string(u.Factors.Passkeys[0].ID) != "cred-0" {
		t.Fatalf("remove: %v %+v", err, u.Factors.Passkeys)
	}
	if _, err := u.RemovePasskey(k.ID); !errors.Is(err, ErrPasskeyNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	for i := range MaxPasskeys {
		u, _ = u.AddPasskey(Passkey{ID: []byte{byte(i)}, PublicKey: []byte("p")})
	}
	if _, err := u.AddPasskey(Passkey{ID: []byte("one-more"), PublicKey: []byte("p")}); !errors.Is(err, ErrTooManyPasskeys) {
		t.Fatalf("past the limit: %v", err)
	}
}
