package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// authRequest is a valid, unanswered authorization request of the client.
func authRequest(id, clientID string) identity.AuthRequest {
	return identity.AuthRequest{
		ID: id, ClientID: clientID, RedirectURI: "https://" + clientID + ".example/callback",
		Scopes: []string{"openid", "profile"}, State: "st-" + id, Nonce: "n-" + id,
		CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CreatedAt: t0, ExpiresAt: t0.Add(identity.AuthRequestTTL),
	}
}

func getAuthRequest(t *testing.T, s Store, id string) identity.AuthRequest {
	t.Helper()
	r, err := s.GetAuthRequest(ctx, id)
	check(t, err)
	return r
}

// noAuthRequest checks that no request is stored under id, to GetAuthRequest and to
// UpdateAuthRequest alike.
func noAuthRequest(t *testing.T, s Store, what, id string) {
	t.Helper()
	_, err := s.GetAuthRequest(ctx, id)
	wantCode(t, what+": GetAuthRequest", err, apperr.ENOTFOUND)
	updateNothing(t, what+": UpdateAuthRequest", s.UpdateAuthRequest, id)
}

// answer is the updater that answers a request once: an answered one is refused.
func answer(r identity.AuthRequest) (identity.AuthRequest, error) {
	if r.Answered {
		return identity.AuthRequest{}, errAnswered
	}
	r.Answered = true
	return r, nil
}

var errAnswered = errors.New("already answered")

func testAuthRequestRoundTrip(t *testing.T, s Store) {
	maxAge := 300
	full := authRequest("r1", "grafana")
	full.Prompt, full.LoginHint, full.MaxAge = "login consent", "alice", &maxAge
	full.Scopes = []string{"openid", "profile", "email", "offline_access"}
	full.ACRValues = []string{"mfa", "urn:unknown"}
	full.Resource = "https://api.example/" // RFC 8707
	full.SignInAfter, full.Answered = t0.Add(time.Second).In(zone), true
	full.CreatedAt, full.ExpiresAt = full.CreatedAt.In(zone), full.ExpiresAt.In(zone)
	// A confidential client's request without PKCE, state, nonce or max_age; an empty list.
	bare := identity.AuthRequest{ID: "r2", ClientID: "billing", RedirectURI: "https://billing.example/cb", Scopes: []string{"openid"},
		ACRValues: []string{}, ExpiresAt: t0.Add(time.Minute)}
	zero := 0
	noAge := authRequest("r3", "grafana")
	noAge.MaxAge = &zero // max_age=0 is asked for, not omitted
	create(t, s.CreateAuthRequest, full, bare, noAge)

	want := full
	want.Scopes, want.ACRValues = slices.Clone(full.Scopes), slices.Clone(full.ACRValues)
	want.SignInAfter, want.CreatedAt, want.ExpiresAt = full.SignInAfter.UTC(), full.CreatedAt.UTC(), full.ExpiresAt.UTC()
	got := getAuthRequest(t, s, "r1")
	equal(t, "a request with every field set", got, want)
	equal(t, "a request with nothing optional", getAuthRequest(t, s, "r2"), bare)
	equal(t, "max_age=0", getAuthRequest(t, s, "r3"), noAge)
	// What a read returns is the caller's own.
	got.Scopes[0], got.ACRValues[0], *got.MaxAge = "changed", "changed", 1
	equal(t, "the request after its copy was changed", getAuthRequest(t, s, "r1"), want)
	noAuthRequest(t, s, "no request", "nothing")
}

func testCreateAuthRequestRefusals(t *testing.T, s Store) {
	r := authRequest("r1", "grafana")
	create(t, s.CreateAuthRequest, r)
	other := authRequest("r1", "gitlab")
	wantCode(t, "a request whose id is taken", s.CreateAuthRequest(ctx, other), apperr.ECONFLICT)
	for name, change := range map[string]func(*identity.AuthRequest){
		"no id":           func(r *identity.AuthRequest) { r.ID = "" },
		"no client":       func(r *identity.AuthRequest) { r.ClientID = "" },
		"no redirect URI": func(r *identity.AuthRequest) { r.RedirectURI = "" },
		"no scopes":       func(r *identity.AuthRequest) { r.Scopes = nil },
		"no expiry":       func(r *identity.AuthRequest) { r.ExpiresAt = time.Time{} },
		"an over-long state": func(r *identity.AuthRequest) {
			r.State = strings.Repeat("s", identity.MaxAuthRequestText)
		},
		"over-long acr_values": func(r *identity.AuthRequest) {
			r.ACRValues = slices.Repeat([]string{"mfa"}, identity.MaxAuthRequestText/4+1)
		},
	} {
		bad := authRequest("r2", "grafana")
		change(&bad)
		wantCode(t, "a request with "+name, s.CreateAuthRequest(ctx, bad), apperr.EINVALID)
	}
	equal(t, "the request after the refusals", getAuthRequest(t, s, "r1"), r)
	noAuthRequest(t, s, "a refused request", "r2")
}

func testUpdateAuthRequest(t *testing.T, s Store) {
	r := authRequest("r1", "grafana")
	create(t, s.CreateAuthRequest, r)

	// fn's error changes nothing and is returned.
	_, err := s.UpdateAuthRequest(ctx, "r1", func(r identity.AuthRequest) (identity.AuthRequest, error) {
		r.Answered = true
		r.Scopes[0] = "changed" // fn's lists are its own
		return r, errBoom
	})
	wantIs(t, "an updater's error", err, errBoom)
	equal(t, "the request after a failed updater", getAuthRequest(t, s, "r1"), r)

	// An update may only record a sign-in asked for and the answer: anything else is refused
	// and changes nothing.
	age := 5
	for name, change := range map[string]func(*identity.AuthRequest){
		"the id":           func(r *identity.AuthRequest) { r.ID = "r9" },
		"the client":       func(r *identity.AuthRequest) { r.ClientID = "gitlab" },
		"the redirect URI": func(r *identity.AuthRequest) { r.RedirectURI = "https://evil.example/cb" },
		"the scopes":       func(r *identity.AuthRequest) { r.Scopes = append(r.Scopes, "admin") },
		"the state":        func(r *identity.AuthRequest) { r.State = "other" },
		"the nonce":        func(r *identity.AuthRequest) { r.Nonce = "other" },
		"the challenge":    func(r *identity.AuthRequest) { r.CodeChallenge = "" },
		"the prompt":       func(r *identity.AuthRequest) { r.Prompt = "none" },
		"the login hint":   func(r *identity.AuthRequest) { r.LoginHint = "mallory" },
		"the max age":      func(r *identity.AuthRequest) { r.MaxAge = &age },
		"the acr values":   func(r *identity.AuthRequest) { r.ACRValues = []string{"sfa"} },
		"the creation":     func(r *identity.AuthRequest) { r.CreatedAt = r.CreatedAt.Add(time.Second) },
		"the expiry":       func(r *identity.AuthRequest) { r.ExpiresAt = r.ExpiresAt.Add(time.Hour) },
	} {
		got, err := s.UpdateAuthRequest(ctx, "r1", func(r identity.AuthRequest) (identity.AuthRequest, error) {
			r.SignInAfter = t0
			change(&r)
			return r, nil
		})
		wantCode(t, "an update that changes "+name, err, apperr.EINVALID)
		equal(t, "what an update that changes "+name+" returns", got, identity.AuthRequest{})
		equal(t, "the request after an update that changes "+name, getAuthRequest(t, s, "r1"), r)
	}
	noAuthRequest(t, s, "the id an update tried", "r9")

	// The sign-in asked for is recorded; the result is what is stored.
	got, err := s.UpdateAuthRequest(ctx, "r1", func(r identity.AuthRequest) (identity.AuthRequest, error) {
		r.SignInAfter = t0.Add(time.Minute).In(zone)
		return r, nil
	})
	check(t, err)
	want := r
	want.SignInAfter = t0.Add(time.Minute)
	equal(t, "UpdateAuthRequest's result", got, want)
	equal(t, "the request after it", getAuthRequest(t, s, "r1"), want)
	// It does not move back.
	_, err = s.UpdateAuthRequest(ctx, "r1", func(r identity.AuthRequest) (identity.AuthRequest, error) {
		r.SignInAfter = t0
		return r, nil
	})
	wantCode(t, "an update that moves the sign-in asked for back", err, apperr.EINVALID)
	// Answered once; the second answer is fn's refusal, and it is not un-answered.
	got, err = s.UpdateAuthRequest(ctx, "r1", answer)
	check(t, err)
	want.Answered = true
	equal(t, "the answered request", got, want)
	_, err = s.UpdateAuthRequest(ctx, "r1", answer)
	wantIs(t, "a second answer", err, errAnswered)
	_, err = s.UpdateAuthRequest(ctx, "r1", func(r identity.AuthRequest) (identity.AuthRequest, error) { r.Answered = false; return r, nil })
	wantCode(t, "an update that un-answers a request", err, apperr.EINVALID)
	equal(t, "the request after them", getAuthRequest(t, s, "r1"), want)
}

func testConcurrentAnswerOneWinner(t *testing.T, s Store) {
	create(t, s.CreateAuthRequest, authRequest("r1", "grafana"))
	oneWinner(t, "answer", 20, errAnswered, func(_ int, slow func(func(identity.AuthRequest) (identity.AuthRequest, error)) func(identity.AuthRequest) (identity.AuthRequest, error)) error {
		_, err := s.UpdateAuthRequest(ctx, "r1", slow(answer))
		return err
	})
}

func testDeleteDeadAuthRequests(t *testing.T, s Store) {
	expiring := func(id string, at time.Time) identity.AuthRequest {
		r := authRequest(id, "grafana")
		r.ExpiresAt = at
		return r
	}
	answered := expiring("later-answered", t0.Add(time.Hour))
	answered.Answered = true
	create(t, s.CreateAuthRequest, expiring("gone1", t0.Add(-time.Hour)), expiring("gone2", t0.Add(-time.Microsecond)),
		expiring("at", t0), expiring("later", t0.Add(time.Microsecond)), answered)
	n, err := s.DeleteDeadAuthRequests(ctx, t0.In(zone))
	check(t, err)
	if n != 2 {
		t.Fatalf("DeleteDeadAuthRequests removed %d, want the 2 that expired before", n)
	}
	noAuthRequest(t, s, "a request that expired before", "gone1")
	noAuthRequest(t, s, "a request that expired a microsecond before", "gone2")
	for _, id := range []string{"at", "later", "later-answered"} {
		getAuthRequest(t, s, id) // still there: an answered one too, until it expires
	}
	n, err = s.DeleteDeadAuthRequests(ctx, t0.Add(2*time.Hour))
	check(t, err)
	if n != 3 {
		t.Fatalf("DeleteDeadAuthRequests later removed %d, want 3", n)
	}
	for i := range 3 {
		create(t, s.CreateAuthRequest, expiring(fmt.Sprintf("again%d", i), t0))
	}
	if n, err := s.DeleteDeadAuthRequests(ctx, t0); err != nil || n != 0 {
		t.Fatalf("DeleteDeadAuthRequests at their expiry: %d, %v; want 0", n, err)
	}
}
