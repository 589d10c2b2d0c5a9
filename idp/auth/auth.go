// Package auth holds the IdP's use cases, free of HTTP, in four parts by whom they serve (see
// service.go): SignIn, Grants, Account and Admin. Every sign-in is an authenticator saying who
// proved what (an Authentication) and then Complete (signin.go), which makes the session or
// tokens and records it; Issue mints tokens for a Grant — which user or client, through which
// client, for which scopes and audience, with or without a refresh family, in which session —
// and the token endpoint's grants are GrantTypes (grants.go). The HTTP handlers are thin callers
// of these, so the rules live once.
package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/oidc"
	"jwtidp/idp/password"
	"jwtidp/idp/token"
	"jwtidp/idp/upstream"
	"jwtidp/shared/apperr"
	"jwtidp/shared/jwtauth"
)

// Users is what the use cases need of the user store.
type Users = identity.UserStore

// Families is what the use cases need of the refresh-token store.
type Families = identity.FamilyStore

// Tokens is what Issue mints.
type Tokens struct {
	AccessToken  string
	RefreshToken string // empty when the grant asked for no refresh family
	IDToken      string // the code exchange's, when scope has openid
	ExpiresIn    int    // seconds
	Scope        string
	SessionEnds  time.Time // the refresh family's absolute expiry
	// IssuedTokenType is RFC 8693's issued_token_type, on a token exchange's answer only.
	IssuedTokenType string

	groups []string // the user's groups as Issue read them, for the code exchange's ID token
}

// Client is an OAuth client as the use cases see it: the first-party client that /auth and
// the browser login act for, and later the registered OpenID Connect clients.
type Client struct {
	ID       string
	Scope    string   // what it is granted
	Audience []string // whom its access tokens are for
}

// Grant is what Issue mints tokens for.
type Grant struct {
	User      identity.User // the subject, as read when it authenticated (its Epoch binds a family)
	Client    Client
	Scope     string         // defaults to the client's
	Refresh   bool           // start a refresh family
	SessionID string         // the browser session the family belongs to, if any
	AMR       []string       // how the user signed in, for the access tokens (amr)
	IDP       string         // the connector that sign-in went through, kept by its family
	AuthTime  time.Time      // when the user signed in, kept by its family for its refreshes' ID tokens
	Act       *jwtauth.Actor // the act claim of a token exchange's token (no refresh family then)
	NotAfter  time.Time      // the access token's latest expiry (a token exchange's subject's); zero: none

	refresh, refreshHash string // made beforehand (the code exchange names it in the code); "": made here
}

// ErrInvalidCredentials is the one answer for a wrong password and an unknown user alike.
var ErrInvalidCredentials = apperr.Errorf(apperr.EUNAUTHORIZED, "Invalid credentials")

// Signup creates an account, with an optional email (unverified). EINVALID names the broken
// rule; ECONFLICT when the username is taken in any letter case. An email another user has is
// not an error: the account is made without it, exactly as with a free one, so that signup
// tells no one whose address it is (the address's owner is to be told by mail).
func (s *SignIn) Signup(ctx context.Context, username, pw, email string) error {
	if err := identity.ValidateUsername(username); err != nil {
		return err
	}
	if err := identity.ValidateEmail(email); err != nil {
		return err
	}
	if err := s.signupAllowed(email); err != nil {
		return err
	}
	u, err := s.newAccount(ctx, username, pw)
	if err != nil {
		return err
	}
	id := u.ID
	u.Email = email
	err = s.audited(ctx, func(ctx context.Context) error { return s.Users.CreateUser(ctx, u) },
		s.event(ctx, identity.AuditSignup, id, Success, ""))
	mctx := ctx
	if errors.Is(err, identity.ErrEmailTaken) {
		// The address's owner is told (when it is verified): the requester learns nothing.
		if owner, oerr := s.Users.GetUserByEmail(ctx, email); oerr == nil {
			mctx = s.withNotice(ctx, owner, NoticeSignupWithYourAddress)
		}
		u.Email = ""
		err = s.audited(mctx, func(ctx context.Context) error { return s.Users.CreateUser(ctx, u) },
			s.event(ctx, identity.AuditSignup, id, Success, "the email given is another user's: not attached"))
	}
	if err != nil {
		return err
	}
	s.mailQueued(mctx)
	s.Logger.InfoContext(ctx, "user created", "sub", id)
	s.sendVerification(ctx, u, u.Email)
	return nil
}

// newAccount is a new user with a password, not yet stored: the password checked against the
// policy (which refuses an over-long one before anything hashes it) and hashed, a random id.
func (s *core) newAccount(ctx context.Context, username, pw string) (identity.User, error) {
	if err := password.CheckPolicy(username, pw); err != nil {
		return identity.User{}, err
	}
	hash, err := s.Hasher.Hash(ctx, pw)
	if err != nil {
		return identity.User{}, err
	}
	id, err := token.RandomString(s.Random, 16)
	if err != nil {
		return identity.User{}, err
	}
	return identity.User{ID: id, Username: username, PasswordHash: hash, CreatedAt: s.Now().UTC()}, nil
}

// Credentials are a login attempt: what the user typed. Where it came from is the request's
// (WithClientIP), as for every use case.
type Credentials struct {
	Username string
	Password string
	Device   Device // the browser's device cookie for this username, if it has a validly signed one
	OTP      string // the second factor given with the password (/auth's "otp"), if any
	// Deferred: the caller asks for the second factor in a step of its own (the browser login):
	// a right password for an account with one is a pending Authentication, not ErrOTPRequired.
	Deferred bool
	// Scope is what Login is asked for: "" for the first-party client's scopes, AdminScope for
	// an admin credential.
	Scope string
	// LocalOnly: only the IdP's own accounts are asked, not the directories of
	// PasswordBackends (linking an upstream identity to a local account).
	LocalOnly bool
}

// Device is a device cookie's content (OWASP's device cookie): a browser that has logged in to
// the account before, under its current credentials. Its signature is checked by the HTTP
// layer; whether it is still good for the user is decided here.
type Device struct {
	ID    string
	Epoch int64  // the user's credential epoch when it was issued: a password change voids it
	Sub   string // the user it was issued to: another user who later has the username is not them
}

// For reports whether the device cookie is still good for u as stored now: issued to this very
// user under their current credentials.
func (d Device) For(u identity.User) bool {
	return d.ID != "" && u.ID != "" && d.Sub == u.ID && d.Epoch == u.Epoch
}

func (c Credentials) attempt(ctx context.Context) Attempt {
	return Attempt{Account: c.Username, Remote: remoteKey(ctx), Device: c.Device.ID}
}

// Authentication is who proved to be whom, and how.
type Authentication struct {
	User     identity.User // as read when the password was checked: its Epoch binds what is made from it
	AMR      []string      // RFC 8176 methods: "pwd"; "pwd", "otp", "mfa" with a one-time code; "fed"
	AuthTime time.Time
	// IDP is the connector an upstream sign-in went through ("" for the IdP's own accounts): the
	// ID token's idp claim.
	IDP string
	// Pending: the password was right and a second factor is owed (Credentials.Deferred). It
	// signs nobody in; SecondFactor completes it.
	Pending bool
	// NotAfter, when set, is the latest a session made from it may end: a step-up's session
	// ends when the session it replaces would have, or stepping up would renew a sign-in.
	NotAfter time.Time
}

// Authenticate checks a username and password. A wrong password and an unknown user both
// answer ErrInvalidCredentials after the same work (a dummy hash for the unknown user). Input
// no account can have — a username outside the signup rules, an over-long password — is
// EINVALID before anything is looked up, hashed or counted.
func (s *SignIn) Authenticate(ctx context.Context, c Credentials) (Authentication, error) {
	a, err := s.authenticate(ctx, c)
	outcome := s.countLogin(err)
	s.Logger.InfoContext(ctx, "login", "outcome", outcome, "sub", a.User.ID, "client", requestOf(ctx).clientIP)
	if err != nil {
		detail := "password"
		if a.User.ID == "" {
			detail = "password: unknown user"
		}
		s.loginRefused(ctx, a.User.ID, c.OTP != "", detail, err)
	}
	return a, err
}

// recordLogin keeps when the user signed in and the audit event of it, in one write.
func (s *core) recordLogin(ctx context.Context, userID, method string) {
	at := s.Now().UTC().Truncate(time.Microsecond) // what every store keeps
	err := s.audited(ctx, func(ctx context.Context) error {
		_, err := s.Users.UpdateUser(ctx, userID, func(u identity.User) (identity.User, error) { return u.RecordLogin(at) })
		return err
	}, s.event(ctx, identity.AuditLogin, userID, Success, method))
	if err != nil {
		s.Logger.ErrorContext(ctx, "sign-in not recorded", "sub", userID, "err", err)
	}
}

// loginRefused records a refused sign-in: a lockout, a wrong one-time code (given: none is the
// prompt for one, not a failure), or a wrong password or unknown user. Malformed input, which
// no account can have, is not an event.
func (s *core) loginRefused(ctx context.Context, userID string, otpGiven bool, detail string, err error) {
	ctx = unproven(ctx)
	switch {
	case apperr.Code(err) == apperr.ETHROTTLED:
		if s.Throttle.firstRefusal(userID+"\x00"+requestOf(ctx).clientIP, s.Now(), err) {
			s.record(ctx, s.event(ctx, identity.AuditLockout, userID, Failure, "too many failed attempts: refused until the lockout ends"))
		}
	case errors.Is(err, ErrOTPRequired):
		if otpGiven {
			s.record(ctx, s.event(ctx, identity.AuditSecondFactorFailure, userID, Failure, "wrong or spent one-time code"))
		}
	case apperr.Code(err) == apperr.EUNAUTHORIZED:
		s.record(ctx, s.event(ctx, identity.AuditLogin, userID, Failure, detail))
	}
}

// countLogin reports a sign-in's outcome to the metrics (OnLogin) and returns it: "success",
// "invalid", "throttled", "malformed" or "error". Passwords and passkeys count alike.
func (s *core) countLogin(err error) string {
	outcome := "error"
	switch apperr.Code(err) {
	case "":
		outcome = "success"
	case apperr.EUNAUTHORIZED:
		outcome = "invalid"
	case apperr.ETHROTTLED:
		outcome = "throttled"
	case apperr.EINVALID:
		outcome = "malformed"
	}
	if s.OnLogin != nil {
		s.OnLogin(outcome)
	}
	return outcome
}

// authenticate checks c against the password backends in order (PasswordBackends; none: the
// local accounts alone) and stops at the first that knows the username and password. The throttle
// counts the attempt once, whichever backends were asked: a locked attempt asks none, a password
// no backend takes is one failure. A directory that cannot be asked is skipped, logged and
// recorded in Statuses, so local sign-in works while it is down.
func (s *SignIn) authenticate(ctx context.Context, c Credentials) (Authentication, error) {
	if err := identity.ValidateUsername(c.Username); err != nil {
		return Authentication{}, err
	}
	if len(c.Password) > password.MaxBytes {
		return Authentication{}, apperr.Errorf(apperr.EINVALID, "Password must be at most %d bytes long", password.MaxBytes)
	}
	backends := s.PasswordBackends
	if len(backends) == 0 || c.LocalOnly {
		backends = []string{upstream.Local}
	}
	var u identity.User // the local account; none (verified against the dummy hash) when unknown
	if slices.Contains(backends, upstream.Local) {
		var err error
		u, err = s.Users.GetUserByName(ctx, c.Username)
		switch apperr.Code(err) {
		case "":
		case apperr.ENOTFOUND:
			u = identity.User{}
		default:
			return Authentication{}, err
		}
	}
	if !c.Device.For(u) {
		c.Device = Device{} // issued before the password changed (or for nobody): no exemption
	}
	// A locked attempt is refused before any hashing or directory, the correct password included.
	if err := s.Throttle.Allow(ctx, c.attempt(ctx)); err != nil {
		return Authentication{User: identity.User{ID: u.ID}}, err
	}
	for _, b := range backends {
		if b != upstream.Local {
			if a, done, err := s.directoryLogin(ctx, b, c); done {
				return a, err
			}
			continue
		}
		ok, rehash, err := s.Hasher.Verify(ctx, u.PasswordHash, c.Password)
		if err != nil {
			return Authentication{}, err
		}
		// A disabled user's right password is answered as a wrong one, after the same work, and
		// counts as one: nothing tells the two apart.
		if ok && !u.Disabled {
			return s.localSignIn(ctx, c, u, rehash)
		}
	}
	if err := s.Throttle.Failure(ctx, c.attempt(ctx)); err != nil {
		return Authentication{}, err
	}
	return Authentication{User: identity.User{ID: u.ID}}, ErrInvalidCredentials
}

// localSignIn finishes authenticate for a local account whose password was right: its second
// factor, unless deferred.
func (s *SignIn) localSignIn(ctx context.Context, c Credentials, u identity.User, rehash bool) (Authentication, error) {
	if err := s.Throttle.Success(ctx, c.attempt(ctx)); err != nil {
		return Authentication{}, err
	}
	if rehash {
		s.rehash(ctx, u, c.Password)
	}
	a := Authentication{User: u, AMR: []string{"pwd"}, AuthTime: s.Now().UTC()}
	switch {
	case !u.Factors.HasTOTP():
		return a, nil
	case c.Deferred:
		a.Pending = true
		return a, nil
	}
	amr, err := s.secondFactor(ctx, u, c.OTP, c.attempt(ctx))
	if err != nil {
		return Authentication{User: identity.User{ID: u.ID}}, err
	}
	a.AMR = amr
	return a, nil
}

// directoryLogin asks the directory id about c. done is false when the next backend is to be
// asked: the directory refused the password, or could not be asked (logged, and recorded in
// Statuses). Otherwise the attempt succeeded upstream and Federated says who signed in here.
func (s *SignIn) directoryLogin(ctx context.Context, id string, c Credentials) (a Authentication, done bool, err error) {
	d := s.Directories[id]
	if d == nil {
		s.Logger.ErrorContext(ctx, "password backend is not a directory", "connector", id)
		return Authentication{}, false, nil
	}
	ident, err := d.Login(ctx, c.Username, c.Password)
	s.Statuses.Record(id, s.Now(), err)
	switch apperr.Code(err) {
	case "":
	case apperr.EUNAUTHORIZED, apperr.EINVALID:
		return Authentication{}, false, nil
	default:
		s.Logger.WarnContext(ctx, "directory unavailable: trying the next password backend", "connector", id, "err", err)
		return Authentication{}, false, nil
	}
	if err := s.Throttle.Success(ctx, c.attempt(ctx)); err != nil {
		return Authentication{}, true, err
	}
	if a, err = s.Federated(ctx, id, ident); err != nil || !a.User.Factors.HasTOTP() {
		return a, true, err
	}
	if c.Deferred {
		a.Pending = true // the browser's next page asks the code
		return a, true, nil
	}
	amr, err := s.secondFactor(ctx, a.User, c.OTP, c.attempt(ctx))
	if err != nil {
		return Authentication{User: identity.User{ID: a.User.ID}}, true, err
	}
	a.AMR, a.Pending = amr, false
	return a, true, nil
}

// Login is the API's sign-in (/auth): it authenticates and completes the sign-in with tokens
// of the first-party client and a refresh family.
//
// With Scope AdminScope it issues an admin credential instead: an access token with only that
// scope, for the IdP itself (aud: the issuer), and no refresh token — only to a user flagged
// admin (ErrNotAdmin otherwise, after the password was right).
func (s *SignIn) Login(ctx context.Context, c Credentials) (Tokens, Authentication, error) {
	if c.Scope != "" && c.Scope != AdminScope {
		return Tokens{}, Authentication{}, apperr.Errorf(apperr.EINVALID, "scope may only be %q (or absent)", AdminScope)
	}
	a, err := s.Authenticate(ctx, c)
	if err != nil {
		return Tokens{}, a, err
	}
	signed, err := s.Complete(ctx, a, Target{Admin: c.Scope == AdminScope})
	return signed.Tokens, a, err
}

// AdminScope is the scope of an admin credential: an access token with it, of a user still
// flagged admin and not disabled, opens the admin routes.
const AdminScope = "idp:admin"

// ErrNotAdmin refuses the admin scope to a user not flagged admin.
var ErrNotAdmin = apperr.Errorf(apperr.EFORBIDDEN, "Not an administrator")

// UserActive reports whether the user with this sub exists and is not disabled: what the
// IdP's own account routes ask of a token's subject at each request.
func (s *Account) UserActive(ctx context.Context, sub string) (bool, error) {
	u, err := s.activeUser(ctx, sub)
	return u.ID != "", err
}

// activeUser is the user with this sub as stored now, or the zero User when there is none or
// they are disabled.
func (s *core) activeUser(ctx context.Context, sub string) (identity.User, error) {
	u, err := s.Users.GetUser(ctx, sub)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND || err == nil && u.Disabled:
		return identity.User{}, nil
	case err != nil:
		return identity.User{}, err
	}
	return u, nil
}

// IsAdmin reports whether the user with this sub may use an admin credential now: they exist,
// are flagged admin and are not disabled. Read from the store at every admin request, so a
// revoked flag takes effect at once.
func (s *Admin) IsAdmin(ctx context.Context, sub string) (bool, error) {
	u, err := s.activeUser(ctx, sub)
	return u.Admin, err
}

// rehash upgrades a hash made with weaker parameters; a failure only delays the upgrade.
func (s *core) rehash(ctx context.Context, u identity.User, pw string) {
	h, err := s.Hasher.Hash(ctx, pw)
	if err == nil {
		// Only if the hash is still the one just checked: a concurrent password change wins.
		_, err = s.Users.UpdateUser(ctx, u.ID, func(cur identity.User) (identity.User, error) {
			return cur.ReplacePasswordHash(u.PasswordHash, h)
		})
	}
	if err != nil {
		s.Logger.WarnContext(ctx, "password rehash skipped", "sub", u.ID, "err", err)
		return
	}
	s.Logger.InfoContext(ctx, "password rehashed with current parameters", "sub", u.ID)
}

// Issue mints an access token for g and, when g asks for one, starts a refresh family. A family
// is made only if the user's credentials are still those g.User was read with: a login that
// raced a password change gets ErrInvalidCredentials, nothing else. The access token's sid is
// g's browser session, or else the new family (what GET /account/sessions lists); the family is
// made first, so that the sid names one that exists.
func (s *core) Issue(ctx context.Context, g Grant) (Tokens, error) {
	if g.Scope == "" {
		g.Scope = g.Client.Scope
	}
	groups, err := s.grantGroups(ctx, g)
	if err != nil {
		return Tokens{}, err
	}
	g.Scope = s.limitScope(g.Scope, groups)
	if !g.Refresh {
		access, exp, err := s.Issuer.Access(token.Access{Subject: g.User.ID, Username: usernameFor(g.User, g.Client.ID, g.Scope), ClientID: g.Client.ID,
			Scope: g.Scope, Audience: g.Client.Audience, AMR: g.AMR, SessionID: g.SessionID, Groups: groupsFor(groups, g.Client.ID), Act: g.Act,
			NotAfter: g.NotAfter})
		t := s.tokens(access, "", g.Scope)
		if !g.NotAfter.IsZero() && err == nil {
			t.ExpiresIn = int(exp.Sub(s.Now().Truncate(time.Second)).Seconds())
		}
		t.groups = groups
		return t, err
	}
	refresh, hash := g.refresh, g.refreshHash
	if refresh == "" {
		if refresh, hash, err = token.NewRefresh(s.Random); err != nil {
			return Tokens{}, err
		}
	}
	famID, err := token.RandomString(s.Random, 16)
	if err != nil {
		return Tokens{}, err
	}
	now := s.Now().UTC()
	err = s.Families.CreateFamily(ctx, identity.Family{
		ID: famID, UserID: g.User.ID, ClientID: g.Client.ID, Scope: g.Scope, Audience: g.Client.Audience,
		SessionID: g.SessionID, Epoch: g.User.Epoch, CreatedAt: now, ExpiresAt: now.Add(s.RefreshTTL), Current: hash, AMR: g.AMR, IDP: g.IDP,
		AuthTime: g.AuthTime,
	})
	switch {
	case errors.Is(err, identity.ErrStaleCredentials):
		s.Logger.WarnContext(ctx, "refresh family refused: credentials changed during sign-in", "sub", g.User.ID)
		return Tokens{}, ErrInvalidCredentials
	case apperr.Code(err) == apperr.EUNAVAILABLE:
		// The disk is failing: the login still succeeds, with an access token and no session to
		// refresh, rather than locking every user out.
		s.Logger.WarnContext(ctx, "login without refresh token: storage unavailable", "sub", g.User.ID)
		access, err := s.access(g.User, g.Client.ID, g.Scope, g.SessionID, g.Client.Audience, g.AMR, groups)
		if err != nil {
			return Tokens{}, err
		}
		t := s.tokens(access, "", g.Scope)
		t.SessionEnds, t.groups = s.Now().Add(s.Issuer.TTL), groups
		return t, nil
	case err != nil:
		return Tokens{}, fmt.Errorf("store refresh family: %w", err)
	}
	access, err := s.access(g.User, g.Client.ID, g.Scope, familySID(g.SessionID, famID), g.Client.Audience, g.AMR, groups)
	if err != nil {
		return Tokens{}, err
	}
	t := s.tokens(access, refresh, g.Scope)
	t.SessionEnds, t.groups = now.Add(s.RefreshTTL), groups
	return t, nil
}

// familySID is the sid of the access tokens a family issues: the browser session it is bound to
// (the ID token's sid too), or else the family itself.
func familySID(sessionID, familyID string) string {
	if sessionID != "" {
		return sessionID
	}
	return familyID
}

// access mints an access token of u for the client, from the session or family sid. It names
// the user (preferred_username) only to the IdP's own client, whose tokens always did, or with
// scope profile: a relying party that was not granted the user's profile does not learn their
// username from its token. groups, the user's, go into the IdP's own client's tokens only.
func (s *core) access(u identity.User, clientID, scope, sid string, audience, amr, groups []string) (string, error) {
	access, _, err := s.Issuer.Access(token.Access{Subject: u.ID, Username: usernameFor(u, clientID, scope), ClientID: clientID, Scope: scope, Audience: audience, AMR: amr,
		SessionID: sid, Groups: groupsFor(groups, clientID)})
	return access, err
}

// usernameFor is the username a client may learn of u with scope: the first-party client always,
// a relying party only with profile — in its access tokens and at introspection alike.
func usernameFor(u identity.User, clientID, scope string) string {
	if clientID != identity.FirstPartyClientID && !slices.Contains(strings.Fields(scope), ScopeProfile) {
		return ""
	}
	return u.Username
}

func (s *core) tokens(access, refresh, scope string) Tokens {
	return Tokens{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(s.Issuer.TTL.Seconds()), Scope: scope}
}

// Refresh spends a refresh token of the first-party client (which does not authenticate) and
// returns a new access token and the family's next refresh token. Every failure — unknown,
// spent (which revokes the family), revoked, expired, a user who no longer exists, or a family
// issued to a registered client, which must use RefreshGrant — is identity.ErrInvalidGrant.
func (s *Grants) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	return s.RefreshGrant(ctx, RefreshRequest{Token: refreshToken})
}

// refresh spends refreshToken when check, run on its family inside the transaction, allows it
// and returns the access token's scope; check's refusal changes nothing.
func (s *core) refresh(ctx context.Context, refreshToken, resource string, check func(identity.Family) (string, error)) (Tokens, error) {
	next, nextHash, err := token.NewRefresh(s.Random)
	if err != nil {
		return Tokens{}, err
	}
	presented := token.HashRefresh(refreshToken)
	var u identity.User
	var scope string
	var reuse []identity.AuditEvent // the event of a reuse, kept with the family's revocation
	events := func() []identity.AuditEvent { return reuse }
	step := func(f identity.Family, owner identity.User) (identity.Family, error) {
		u, reuse = owner, nil
		var err error
		if scope, err = check(f); err != nil {
			return identity.Family{}, err
		}
		next, err := f.Refresh(presented, nextHash, owner, s.Now())
		if errors.Is(err, identity.ErrReuse) {
			reuse = []identity.AuditEvent{s.event(unproven(ctx), identity.AuditRefreshReuse, f.UserID, Failure,
				"a spent refresh token was presented again: family of client "+f.ClientID+" revoked")}
		}
		return next, err
	}
	// A store that is also the group store reads the owner's groups with the family, one round
	// trip fewer than reading them after (groupsRead says they are in groups).
	var f identity.Family
	var groups []string
	fg, groupsRead := s.Families.(identity.FamilyGroupsStore)
	if groupsRead = groupsRead && s.Groups != nil && any(s.Groups) == any(s.Families); groupsRead {
		f, groups, err = fg.UpdateFamilyByTokenWithGroups(identity.WithAudit(ctx, events), presented, step)
	} else {
		f, err = s.Families.UpdateFamilyByToken(identity.WithAudit(ctx, events), presented, step)
	}
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		s.Logger.InfoContext(ctx, "refresh refused", "reason", "unknown token")
		return Tokens{}, identity.ErrInvalidGrant
	case errors.Is(err, errWrongClient):
		s.Logger.WarnContext(ctx, "refresh refused", "reason", err)
		return Tokens{}, identity.ErrInvalidGrant
	case errors.Is(err, errScopeWidened):
		return Tokens{}, ErrInvalidScope
	case errors.Is(err, errNotTheFamilysResource):
		return Tokens{}, err
	case errors.Is(err, identity.ErrReuse):
		s.Logger.WarnContext(ctx, "refresh token reuse: family revoked", "sub", f.UserID, "family", f.ID)
		LogAudit(ctx, s.Logger, reuse...)
		if s.OnRefreshReuse != nil {
			s.OnRefreshReuse()
		}
		return Tokens{}, identity.ErrInvalidGrant
	case apperr.Code(err) == apperr.EUNAUTHORIZED:
		s.Logger.InfoContext(ctx, "refresh refused", "sub", f.UserID, "family", f.ID, "reason", err)
		return Tokens{}, identity.ErrInvalidGrant
	case err != nil:
		return Tokens{}, err
	}
	audience := s.familyAudience(f)
	if resource != "" {
		audience = []string{resource} // RFC 8707: one of the family's, as check made sure
	}
	// A user linked to a directory is asked about there (at most once a minute): one who is gone
	// loses the family just refreshed, and gets nothing. Any other failure lets the refresh
	// pass: its token is spent already, and a retry would look like reuse.
	if synced, err := s.checkUpstream(ctx, u.ID); errors.Is(err, upstream.ErrGone) {
		if err := s.revoke(ctx, nextHash, "ended: the user is gone from the directory"); err != nil {
			s.Logger.ErrorContext(ctx, "family of a user gone upstream not revoked", "sub", u.ID, "err", err)
		}
		return Tokens{}, identity.ErrInvalidGrant
	} else {
		if err != nil {
			s.Logger.WarnContext(ctx, "upstream check at refresh failed: the refresh passes", "sub", u.ID, "err", err)
		}
		if synced || err != nil {
			// The directory's answer changed them, or may have in part before the check failed
			// (a later link's claim, a sync cut short): the groups read with the family are stale.
			groupsRead = false
		}
	}
	// The family keeps the scope it was granted; what this refresh carries of it is decided by
	// the memberships read now, so a member removed from a group loses its scopes at once.
	if !groupsRead {
		if groups, err = groupsOf(ctx, s.Groups, u.ID); err != nil {
			return Tokens{}, err
		}
	}
	scope = s.limitScope(scope, groups)
	access, err := s.access(u, f.ClientID, scope, familySID(f.SessionID, f.ID), audience, f.AMR, groups)
	if err != nil {
		return Tokens{}, err
	}
	s.Logger.InfoContext(ctx, "refreshed", "sub", u.ID, "family", f.ID)
	t := s.tokens(access, next, scope)
	t.SessionEnds = f.ExpiresAt
	if granted := strings.Fields(scope); slices.Contains(granted, oidc.ScopeOpenID) {
		// A fresh ID token on every refresh (OpenID Connect Core §12.2), as kubectl demands: the
		// same subject and sign-in (its auth_time, amr, idp, sid), no nonce.
		authTime := f.AuthTime
		if authTime.IsZero() {
			authTime = f.CreatedAt // a family made before families kept the sign-in's time
		}
		id := token.ID{Subject: u.ID, ClientID: f.ClientID, AuthTime: authTime, AMR: f.AMR, IDP: f.IDP,
			ACR: oidc.ACR(f.AMR), SessionID: f.SessionID, AccessToken: access}
		withClaims(&id, u, granted, groups)
		if t.IDToken, err = s.Issuer.IDToken(id, s.IDTokenTTL); err != nil {
			return Tokens{}, err
		}
	}
	return t, nil
}

// familyAudience is the audience of f's access tokens.
func (s *core) familyAudience(f identity.Family) []string {
	if len(f.Audience) == 0 {
		return s.FirstParty.Audience // a family made before families kept their audience
	}
	return f.Audience
}

// Revoke ends the family of a first-party refresh token (RFC 7009), which needs no client
// authentication. Unknown tokens are not an error: the answer must not tell whether a token
// existed.
func (s *Grants) Revoke(ctx context.Context, refreshToken string) error {
	return s.RevokeAs(ctx, ClientAuth{}, refreshToken)
}

// ErrNotTokenOwner refuses to revoke a token issued to another client (RFC 7009 §2.1).
var ErrNotTokenOwner = apperr.Errorf(apperr.EFORBIDDEN, "The token was not issued to this client")

// RevokeAs is RFC 7009 §2.1 for the client a: a registered client's token is revoked only when
// that client authenticates (as at the token endpoint); the first-party client's need no
// authentication. ErrInvalidClient when the client fails to authenticate, or sent nothing for a
// token that needs it; ErrNotTokenOwner when the token is another client's. Nothing changes then.
func (s *Grants) RevokeAs(ctx context.Context, a ClientAuth, refreshToken string) error {
	clientID := ""
	if !a.Empty() {
		c, err := s.tokenClient(ctx, a)
		if err != nil {
			return err
		}
		clientID = c.ID
		ctx = WithActor(ctx, ClientActor(c.ID))
	}
	return s.revokeWith(ctx, token.HashRefresh(refreshToken), "revoked (token revocation)", func(f identity.Family) error {
		owner := f.ClientID
		if owner == identity.FirstPartyClientID {
			owner = ""
		}
		switch {
		case owner == clientID:
			return nil
		case clientID == "":
			return ErrInvalidClient
		default:
			return ErrNotTokenOwner
		}
	})
}

func (s *core) revoke(ctx context.Context, hash, why string) error {
	return s.revokeWith(ctx, hash, why, func(identity.Family) error { return nil })
}

// revokeWith revokes the family that issued the token with this hash when may, run on it inside
// the transaction, allows it; may's refusal changes nothing and is returned. Its audit event,
// written with the revocation, says why; a family already revoked changes and records nothing.
func (s *core) revokeWith(ctx context.Context, hash, why string, may func(identity.Family) error) error {
	var revoked []identity.AuditEvent
	var refused error // may's, told apart from the store's own ENOTFOUND
	events := func() []identity.AuditEvent { return revoked }
	_, err := s.Families.UpdateFamilyByToken(identity.WithAudit(ctx, events), hash, func(f identity.Family, _ identity.User) (identity.Family, error) {
		revoked, refused = nil, nil
		if err := may(f); err != nil {
			refused = err
			return identity.Family{}, err
		}
		if f.Revoked {
			return identity.Family{}, identity.ErrUnchanged // nothing to record
		}
		revoked = []identity.AuditEvent{s.event(ctx, identity.AuditRevocation, f.UserID, Success, "refresh family of client "+f.ClientID+" "+why)}
		return f.Revoke()
	})
	switch {
	case refused != nil && errors.Is(err, refused):
		return refused
	case apperr.Code(err) == apperr.ENOTFOUND || errors.Is(err, identity.ErrUnchanged):
		return nil
	case err != nil:
		return err
	}
	LogAudit(ctx, s.Logger, revoked...)
	return nil
}

// ChangePassword checks the current password, sets the new one (which must pass the signup
// policy) and, in the same transaction, ends every session and refresh family of the user —
// even one a login racing the change is about to make. A wrong current password is
// ErrInvalidCredentials and counts toward throttling as a failed login from that address.
func (s *Account) ChangePassword(ctx context.Context, userID, current, next string) error {
	u, err := s.Users.GetUser(ctx, userID)
	if apperr.Code(err) == apperr.ENOTFOUND {
		return ErrInvalidCredentials
	}
	if err != nil {
		return err
	}
	if err := password.CheckPolicy(u.Username, next); err != nil {
		return err
	}
	if err := s.checkPassword(ctx, u, current, Attempt{Account: u.Username, Remote: remoteKey(ctx)}); err != nil {
		return err
	}
	hash, err := s.Hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	// Refused (ECONFLICT) if the hash is no longer the one just checked: another change won.
	mctx := s.withNotice(ctx, u, NoticePassword)
	err = s.audited(mctx, func(ctx context.Context) error {
		_, err := s.Users.ChangeCredentials(ctx, u.ID, func(cur identity.User) (identity.User, error) {
			return cur.ReplacePasswordHash(u.PasswordHash, hash)
		})
		return err
	}, s.event(ctx, identity.AuditPasswordChange, u.ID, Success, "sessions and refresh tokens ended"))
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	s.Logger.InfoContext(ctx, "password changed; sessions ended", "sub", u.ID)
	s.mailQueued(mctx)
	return nil
}

// checkPassword checks a signed-in user's password again (a password change, disabling a second
// factor), throttled as a login from that address: ErrInvalidCredentials when wrong.
func (s *core) checkPassword(ctx context.Context, u identity.User, pw string, at Attempt) error {
	if len(pw) > password.MaxBytes {
		return apperr.Errorf(apperr.EINVALID, "Password must be at most %d bytes long", password.MaxBytes)
	}
	if err := s.Throttle.Allow(ctx, at); err != nil {
		s.loginRefused(ctx, u.ID, false, "", err)
		return err
	}
	ok, _, err := s.Hasher.Verify(ctx, u.PasswordHash, pw)
	if err != nil {
		return err
	}
	if !ok {
		if err := s.Throttle.Failure(ctx, at); err != nil {
			return err
		}
		s.Logger.InfoContext(ctx, "password check refused", "sub", u.ID)
		s.loginRefused(ctx, u.ID, false, "password check for an account change", ErrInvalidCredentials)
		return ErrInvalidCredentials
	}
	return s.Throttle.Success(ctx, at)
}

// CollectGarbage removes dead families every interval until ctx ends, so the store does not
// grow without bound.
func (s *Service) CollectGarbage(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	s.collectOn(ctx, t.C)
}

// collectOn collects once per tick until ctx ends; one collection finishes before the next tick
// is taken.
func (s *Service) collectOn(ctx context.Context, ticks <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		n, err := s.Families.DeleteDeadFamilies(ctx, s.Now())
		if err != nil {
			s.Logger.ErrorContext(ctx, "refresh-family garbage collection", "err", err)
		} else if n > 0 {
			s.Logger.InfoContext(ctx, "refresh families removed", "count", n)
		}
		if _, err := s.Throttle.CollectStale(ctx); err != nil {
			s.Logger.ErrorContext(ctx, "throttle garbage collection", "err", err)
		}
		if n, err := s.PruneAudit(ctx, s.AuditRetention); err != nil {
			s.Logger.ErrorContext(ctx, "audit trail retention", "err", err)
		} else if n > 0 {
			s.Logger.InfoContext(ctx, "audit events past their retention removed", "count", n)
		}
		if s.Codes != nil {
			// Spent codes are kept a while past their expiry so a late replay is still recognised.
			if _, err := s.Codes.DeleteDeadCodes(ctx, s.Now().Add(-10*time.Minute)); err != nil {
				s.Logger.ErrorContext(ctx, "authorization-code garbage collection", "err", err)
			}
		}
		if s.DeviceCodes != nil {
			if _, err := s.DeviceCodes.DeleteDeadDeviceCodes(ctx, s.Now()); err != nil {
				s.Logger.ErrorContext(ctx, "device-code garbage collection", "err", err)
			}
		}
		if s.AuthRequests != nil {
			if _, err := s.AuthRequests.DeleteDeadAuthRequests(ctx, s.Now()); err != nil {
				s.Logger.ErrorContext(ctx, "authorization-request garbage collection", "err", err)
			}
		}
		if s.Links != nil {
			if _, err := s.Links.DeleteDeadLinks(ctx, s.Now()); err != nil {
				s.Logger.ErrorContext(ctx, "link garbage collection", "err", err)
			}
		}
		if s.Assertions != nil {
			if _, err := s.Assertions.DeleteExpiredAssertions(ctx, s.Now()); err != nil {
				s.Logger.ErrorContext(ctx, "client-assertion garbage collection", "err", err)
			}
		}
		if s.RegistrationTokens != nil {
			if _, err := s.RegistrationTokens.DeleteDeadRegistrationTokens(ctx, s.Now()); err != nil {
				s.Logger.ErrorContext(ctx, "initial access token garbage collection", "err", err)
			}
		}
	}
}
