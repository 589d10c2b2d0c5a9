// Package storetest is the conformance suite every identity store runs, so a second backend
// (PostgreSQL, say) is a drop-in: it must pass the same tests as bbolt, unchanged.
//
// The suite holds a store to the contracts written on the identity interfaces: every field of
// every entity reads back exactly as stored (times in UTC, to the microsecond), each refusal
// has its apperr code and changes nothing, lists come in their documented order, updaters on
// one row from many goroutines lose nothing, and the operations that span entities (a
// credential change, deleting a user, ending a session) do all of their work, and every write
// keeps the audit events and the mail of its context with its change; the outbox hands each due
// message to one claimer at a time.
package storetest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// Store is everything an identity backend implements.
type Store = identity.Store

// RunTests runs the suite; newStore returns a fresh, empty store for each subtest and closes
// it with t.Cleanup.
func RunTests(t *testing.T, newStore func(t *testing.T) Store) {
	for _, tt := range []struct {
		name string
		test func(*testing.T, Store)
	}{
		{"UserRoundTrip", testUserRoundTrip},
		{"CreateUserRefusals", testCreateUserRefusals},
		{"ConcurrentSignupOneWinner", testConcurrentSignup},
		{"ListUsers", testListUsers},
		{"UpdateUser", testUpdateUser},
		{"ConcurrentUpdateUser", testConcurrentUpdateUser},
		{"ChangeCredentials", testChangeCredentials},
		{"ConcurrentChangeCredentials", testConcurrentChangeCredentials},
		{"DeleteUser", testDeleteUser},
		{"UserEmail", testUserEmail},
		{"ConcurrentSignupOneEmail", testConcurrentSignupOneEmail},
		{"SecondFactorsRoundTrip", testSecondFactorsRoundTrip},
		{"SecondFactorUpdaters", testSecondFactorUpdaters},

		{"KeysRoundTrip", testKeysRoundTrip},
		{"KeysUpdateErrorChangesNothing", testKeysUpdateError},
		{"KeysInvalidSet", testKeysInvalid},
		{"ConcurrentUpdateKeys", testConcurrentUpdateKeys},

		{"FamilyRoundTrip", testFamilyRoundTrip},
		{"CreateFamilyRefusals", testCreateFamilyRefusals},
		{"RefreshChainAndReuse", testRefreshChain},
		{"UpdateFamilyByToken", testUpdateFamilyByToken},
		{"UpdateFamilyByTokenWithGroups", testUpdateFamilyByTokenWithGroups},
		{"ConcurrentRefreshOneWinner", testConcurrentRefresh},
		{"ConcurrentUpdateFamily", testConcurrentUpdateFamily},
		{"ListFamiliesOrder", testListFamilies},
		{"RevokeUserFamilies", testRevokeUser},
		{"DeleteDeadFamilies", testDeleteDeadFamilies},
		{"FamilyAMRRoundTrip", testFamilyAMRRoundTrip},

		{"SessionRoundTrip", testSessionRoundTrip},
		{"CreateSessionRefusals", testCreateSessionRefusals},
		{"UpdateSession", testUpdateSession},
		{"ConcurrentUpdateSession", testConcurrentUpdateSession},
		{"ListSessionsOrder", testListSessions},
		{"EndSessionRevokesItsFamilies", testEndSession},
		{"DeleteDeadSessions", testDeleteDeadSessions},
		{"SessionsPerUserBounded", testSessionsPerUserBounded},
		{"PendingSessionRoundTrip", testPendingSessionRoundTrip},
		{"PendingSessionsBounded", testPendingSessionsBounded},
		{"ChangeCredentialsKeeping", testChangeCredentialsKeeping},

		{"Secret", testSecret},

		{"ClientRoundTrip", testClientRoundTrip},
		{"CreateClientRefusals", testCreateClientRefusals},
		{"ListClients", testListClients},
		{"UpdateClient", testUpdateClient},
		{"ConcurrentUpdateClient", testConcurrentUpdateClient},
		{"DeleteClientRevokesItsFamilies", testDeleteClient},

		{"CodeRoundTrip", testCodeRoundTrip},
		{"CreateCodeRefusals", testCreateCodeRefusals},
		{"UpdateCode", testUpdateCode},
		{"ConcurrentRedeemOneWinner", testConcurrentRedeemOneWinner},
		{"DeleteDeadCodes", testDeleteDeadCodes},

		{"DeviceCodeRoundTrip", testDeviceCodeRoundTrip},
		{"CreateDeviceCodeRefusals", testCreateDeviceCodeRefusals},
		{"UpdateDeviceCode", testUpdateDeviceCode},
		{"ConcurrentApproveOneWinner", testConcurrentApproveOneWinner},
		{"DeleteDeadDeviceCodes", testDeleteDeadDeviceCodes},

		{"AuthRequestRoundTrip", testAuthRequestRoundTrip},
		{"CreateAuthRequestRefusals", testCreateAuthRequestRefusals},
		{"UpdateAuthRequest", testUpdateAuthRequest},
		{"ConcurrentAnswerOneWinner", testConcurrentAnswerOneWinner},
		{"DeleteDeadAuthRequests", testDeleteDeadAuthRequests},

		{"LinkRoundTrip", testLinkRoundTrip},
		{"CreateLinkRefusals", testCreateLinkRefusals},
		{"UseLink", testUseLink},
		{"ConcurrentUseLinkOneWinner", testConcurrentUseLinkOneWinner},
		{"DeleteLinks", testDeleteLinks},

		{"FederationRoundTrip", testFederationRoundTrip},
		{"CreateFederationRefusals", testCreateFederationRefusals},
		{"CreateFederatedUser", testCreateFederatedUser},
		{"UpdateFederation", testUpdateFederation},
		{"ConcurrentUpdateFederation", testConcurrentUpdateFederation},
		{"DeleteUserDeletesFederations", testDeleteUserFederations},

		{"RegistrationTokenUses", testRegistrationTokenUses},
		{"CreateRegistrationTokenRefusals", testCreateRegistrationTokenRefusals},
		{"ConcurrentSpendRegistrationToken", testConcurrentSpendRegistrationToken},
		{"DeleteDeadRegistrationTokens", testDeleteDeadRegistrationTokens},
		{"IDPRoundTrip", testIDPRoundTrip},

		{"UseAssertion", testUseAssertion},
		{"ConcurrentUseAssertionOneWinner", testConcurrentUseAssertionOneWinner},
		{"DeleteExpiredAssertions", testDeleteExpiredAssertions},

		{"Consents", testConsents},
		{"DeleteUserAndClientDeleteConsentsAndCodes", testDeleteUserAndClientConsentsCodes},

		{"GroupRoundTrip", testGroupRoundTrip},
		{"Memberships", testMemberships},
		{"ConcurrentAddMemberOneWinner", testConcurrentAddMember},

		{"UserFlagsRoundTrip", testUserFlagsRoundTrip},
		{"DeletedUserIDNeverReused", testDeletedIDNeverReused},
		{"ReservedNames", testReservedNames},
		{"ConcurrentDeleteAndSignup", testConcurrentDeleteAndSignup},
		{"AuditAppendAndList", testAuditAppendAndList},
		{"DeleteAuditBefore", testDeleteAuditBefore},
		{"AuditEveryWrite", testAuditEveryWrite},
		{"AuditWithTheChange", testAuditWithTheChange},
		{"AuditKeptWithReuse", testAuditKeptWithReuse},

		{"ClaimMail", testClaimMail},
		{"EnqueueMailRefusals", testEnqueueMailRefusals},
		{"MailWithTheChange", testMailWithTheChange},
		{"ConcurrentClaimMailOnce", testConcurrentClaimMail},
		{"BackchannelLogoutMail", testBackchannelLogoutMail},

		{"CodeFailuresRoundTrip", func(t *testing.T, s Store) { testCodeFailuresRoundTrip(t, s) }},
		{"ConcurrentCodeFailuresAllCounted", func(t *testing.T, s Store) { testCodeFailuresConcurrent(t, s, s) }},
		{"DeleteStaleCodeFailures", func(t *testing.T, s Store) { testCodeFailuresStale(t, s) }},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, newStore(t)) })
	}
}

// t0 has microseconds, the finest precision the suite asks a store to keep.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// zone is not UTC: times given in it must come back as the same instants in UTC.
var zone = time.FixedZone("UTC+2", 2*60*60)

var errBoom = errors.New("boom")

var ctx = context.Background()

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := apperr.Code(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

func wantIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// user is a valid user at epoch 0 whose username is "user-"+id.
func user(id string) identity.User {
	return identity.User{ID: id, Username: "user-" + id, PasswordHash: "h-" + id, CreatedAt: t0}
}

// users creates users with these ids (families and sessions need theirs to exist).
func users(t *testing.T, s Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		check(t, s.CreateUser(ctx, user(id)))
	}
}

// create stores each of vs with add (a store's Create method), or fails the test.
func create[T any](t *testing.T, add func(context.Context, T) error, vs ...T) {
	t.Helper()
	for _, v := range vs {
		check(t, add(ctx, v))
	}
}

// updateNothing checks that update (a store's Update method) of key, which names nothing
// stored, answers ENOTFOUND and the zero value without calling its updater.
func updateNothing[T any](t *testing.T, what string, update func(context.Context, string, func(T) (T, error)) (T, error), key string) {
	t.Helper()
	called := false
	got, err := update(ctx, key, func(v T) (T, error) { called = true; return v, nil })
	wantCode(t, what, err, apperr.ENOTFOUND)
	if called {
		t.Fatalf("%s: the updater was called for what is not stored", what)
	}
	var zero T
	equal(t, what+": what it returns", got, zero)
}

// listed is what list (a store's List method) returns for arg, which must be a list: empty,
// never nil.
func listed[A, T any](t *testing.T, list func(context.Context, A) ([]T, error), arg A) []T {
	t.Helper()
	l, err := list(ctx, arg)
	check(t, err)
	if l == nil {
		t.Fatalf("the list of %+v is nil, want a list", arg)
	}
	return l
}

func getUser(t *testing.T, s Store, id string) identity.User {
	t.Helper()
	u, err := s.GetUser(ctx, id)
	check(t, err)
	return u
}

func family(id, user, current string) identity.Family {
	return identity.Family{ID: id, UserID: user, ClientID: "idp", Scope: "s", Audience: []string{"a"},
		CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), Current: current}
}

// errPeek makes peek's step change nothing.
var errPeek = errors.New("peek")

// peek returns the family that issued tokenHash and its user as the step sees them, changing
// nothing (a step that returns the zero Family with an error stores nothing).
func peek(t *testing.T, s Store, tokenHash string) (identity.Family, identity.User) {
	t.Helper()
	var f identity.Family
	var u identity.User
	_, err := s.UpdateFamilyByToken(ctx, tokenHash, func(sf identity.Family, su identity.User) (identity.Family, error) {
		f, u = sf, su
		return identity.Family{}, errPeek
	})
	wantIs(t, "peek "+tokenHash, err, errPeek)
	return f, u
}

func refresh(s Store, presented, next string, now time.Time) (identity.Family, error) {
	return s.UpdateFamilyByToken(ctx, presented, func(f identity.Family, u identity.User) (identity.Family, error) {
		return f.Refresh(presented, next, u, now)
	})
}

func session(id, user string, epoch int64) identity.Session {
	return identity.Session{
		ID: id, TokenHash: "th-" + id, UserID: user, Epoch: epoch, AuthTime: t0.Add(-time.Second),
		AMR: []string{"pwd"}, CreatedAt: t0, LastSeenAt: t0, IdleTTL: time.Hour, ExpiresAt: t0.Add(12 * time.Hour),
		RemoteAddr: "192.0.2.1", UserAgent: "test/1.0",
	}
}

func getSession(t *testing.T, s Store, id string) identity.Session {
	t.Helper()
	sess, err := s.GetSession(ctx, id)
	check(t, err)
	return sess
}

func keys(t *testing.T, s Store) []identity.SigningKey {
	t.Helper()
	k, err := s.Keys(ctx)
	check(t, err)
	if k == nil {
		t.Fatal("Keys = nil, want a list")
	}
	return k
}

// oneWinner runs n tries of one change at once, each through an updater that takes a while
// between its read and its write (so that updates without the store's lock would overlap),
// and wants exactly one to win and the others refused with refusal.
func oneWinner[T any](t *testing.T, what string, n int, refusal error, update func(i int, slow func(func(T) (T, error)) func(T) (T, error)) error) {
	t.Helper()
	slow := func(fn func(T) (T, error)) func(T) (T, error) {
		return func(v T) (T, error) {
			time.Sleep(2 * time.Millisecond)
			return fn(v)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, refused := 0, 0
	for i := range n {
		wg.Go(func() {
			err := update(i, slow)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, refusal):
				refused++
			default:
				t.Errorf("%s %d: %v", what, i, err)
			}
		})
	}
	wg.Wait()
	if won != 1 || refused != n-1 {
		t.Fatalf("%d %ss won and %d were refused, want 1 and %d", won, what, refused, n-1)
	}
}
