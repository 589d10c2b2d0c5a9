package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"jwtidp/idp/identity"
)

// A stored authorization request continues until it is answered — once — or has lived
// identity.AuthRequestTTL; the sign-in it asks for is recorded once; the garbage collector
// removes it when it has expired.
func TestAuthRequestLifecycle(t *testing.T) {
	svc, db, c := newService(t)
	svc.AuthRequests = db
	ctx := context.Background()
	start := func() identity.AuthRequest {
		t.Helper()
		now := c.now()
		r, err := svc.StartAuthRequest(ctx, identity.AuthRequest{ClientID: "app", RedirectURI: "https://app.example/cb",
			Scopes: []string{"openid"}, CreatedAt: now, ExpiresAt: now.Add(identity.AuthRequestTTL)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	gone := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrNoAuthRequest) {
			t.Fatalf("%s: %v, want ErrNoAuthRequest", what, err)
		}
	}
	r := start()
	if len(r.ID) != 43 || start().ID == r.ID {
		t.Fatalf("ids %q: want 256 random bits each", r.ID)
	}
	if got, err := svc.AuthRequest(ctx, r.ID); err != nil || got.ID != r.ID || !got.SignInAfter.IsZero() {
		t.Fatalf("AuthRequest: %+v, %v", got, err)
	}
	c.add(time.Minute)
	asked, err := svc.AskSignIn(ctx, r.ID)
	if err != nil || !asked.SignInAfter.Equal(c.now()) {
		t.Fatalf("AskSignIn: %+v, %v", asked, err)
	}
	c.add(time.Minute)
	if again, err := svc.AskSignIn(ctx, r.ID); err != nil || !again.SignInAfter.Equal(asked.SignInAfter) {
		t.Fatalf("AskSignIn again moved it: %+v, %v", again, err)
	}
	if _, err := svc.AnswerAuthRequest(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	_, err = svc.AnswerAuthRequest(ctx, r.ID)
	gone("a second answer", err)
	_, err = svc.AuthRequest(ctx, r.ID)
	gone("an answered request", err)
	_, err = svc.AuthRequest(ctx, "no-such-request")
	gone("an unknown request", err)

	old := start()
	c.add(identity.AuthRequestTTL)
	_, err = svc.AuthRequest(ctx, old.ID)
	gone("a request at its expiry", err)
	_, err = svc.AnswerAuthRequest(ctx, old.ID)
	gone("answering it", err)
	_, err = svc.AskSignIn(ctx, old.ID)
	gone("asking it for a sign-in", err)

	live := start()
	c.add(time.Microsecond)
	gcCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	ticks := make(chan time.Time)
	go func() { svc.collectOn(gcCtx, ticks); close(done) }()
	ticks <- c.now()
	ticks <- c.now() // taken only once the first collection has finished
	stop()
	<-done
	for _, id := range []string{r.ID, old.ID} {
		if _, err := db.GetAuthRequest(ctx, id); err == nil {
			t.Errorf("request %s survived the collection", id)
		}
	}
	if _, err := svc.AuthRequest(ctx, live.ID); err != nil {
		t.Fatalf("the live request was collected: %v", err)
	}
}
