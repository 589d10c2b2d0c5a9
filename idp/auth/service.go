package auth

import (
	"io"
	"log/slog"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/password"
	"jwtidp/idp/seal"
	"jwtidp/idp/token"
	"jwtidp/idp/upstream"
)

// Config is what the use cases are made of: the stores, the token issuer, the clock, randomness,
// the log, the audit trail and the policies.
type Config struct {
	Users    Users
	Families Families
	Clients  Clients // registered clients; nil: none (the client-credentials grant refuses every client)
	// Assertions remembers the jtis of client assertions (private_key_jwt) until they expire;
	// nil: no client can authenticate with one.
	Assertions identity.AssertionStore
	// ClientKeys fetches the keys of clients registered with a jwks_uri; nil: NewClientKeys's.
	ClientKeys *ClientKeys
	Codes      identity.CodeStore // authorization codes; nil: the code flow is off
	// DeviceCodes keeps device authorizations (RFC 8628); nil: the device grant refuses every client.
	DeviceCodes identity.DeviceCodeStore
	Consents    identity.ConsentStore // remembered consents
	Sessions    identity.SessionStore // browser sessions, which a code exchange checks are still live
	// Groups keeps groups and their members; nil: nobody is in a group (and the admin's group
	// methods are not to be called).
	Groups     identity.GroupStore
	IDTokenTTL time.Duration
	Sealer     seal.Sealer         // seals TOTP seeds at rest; nil: seal.None (stored as they are)
	Audit      identity.AuditStore // the audit trail; nil: events are only logged
	// AuditRetention is how long the garbage collector keeps audit events; 0: for ever.
	AuditRetention time.Duration
	Hasher         *password.Hasher
	Issuer         *token.Issuer
	FirstParty     Client        // the client /auth and the browser login act for
	RefreshTTL     time.Duration // a family's absolute lifetime
	Now            func() time.Time
	Random         io.Reader
	Logger         *slog.Logger
	OnLogin        func(outcome string) // metrics: "success", "invalid", "throttled", "error"
	Browser        *Sessions            // the browser sessions Complete starts
	// Scopes are the scopes limited to groups (the configuration file's scopes section), read at
	// every grant so a reload takes effect at once; nil: none is limited.
	Scopes   func() map[string]ScopeRule
	Throttle *Throttle // per-account brute-force protection; nil: none
	// AuthRequests keeps authorization requests while the browser is on a page (required with Codes).
	AuthRequests identity.AuthRequestStore
	// Mail composes the IdP's mail, which goes into the outbox with the change that causes it;
	// nil: mail is off.
	Mail Mailer
	// Links keeps the links mail carries (password resets); nil: none can be made.
	Links identity.LinkStore
	// SignupMode is who may sign up: SignupOpen (""), SignupInvite or SignupClosed; an
	// invitation works in every mode. SignupDomains, with an open sign-up, are the only email
	// domains it takes (an address is then required); none: any.
	SignupMode    string
	SignupDomains []string

	// Upstream identity (the connectors section): each connector's settings by id; the
	// directories (ldap connectors) by id; what the password form tries, in order
	// (upstream.Local and directory ids; empty: local only); the links between local users and
	// upstream subjects; each connector's last success and error.
	Connectors       map[string]upstream.Config
	Directories      map[string]upstream.PasswordConnector
	PasswordBackends []string
	Federations      identity.FederationStore
	Statuses         *upstream.Statuses
	// UpstreamKey (32 bytes or more) authenticates the tickets of link: existing sign-ins.
	UpstreamKey []byte

	// Dynamic client registration (RFC 7591/7592): the initial access tokens (nil: registration
	// is off) and RegistrationMode, RegistrationClosed ("") or RegistrationOpen.
	RegistrationTokens identity.RegistrationTokenStore
	RegistrationMode   string
	// VerifyAccess checks an access token of the IdP's own (signature, issuer, expiry): the
	// token exchange grant's subject tokens. nil: that grant refuses every subject token.
	VerifyAccess VerifyAccess

	// Metrics too, when set: a spent refresh token presented again (its family revoked), and
	// a second-factor code given and refused.
	OnRefreshReuse, OnSecondFactorFailure func()
}

// core is what every part of the use cases shares: the Config, and the mechanisms more than one
// part uses — the audit trail's writes (event, audited, record), minting tokens (Issue), checking
// a password or a one-time code again, reading a client. It has no use cases of its own.
type core struct {
	Config
	resets chan struct{} // the background password-reset look-ups running: ForgotPassword
}

// The use cases, split by whom they serve:
//   - SignIn: proving who one is and finishing the sign-in (Authenticate, SecondFactor, the
//     passkey ceremony, Complete; Login and Signup for the API);
//   - Grants: the token endpoint's grants behind one interface (GrantType: authorization code,
//     refresh token, client credentials), the authorization endpoint's code and consent,
//     revocation, introspection and userinfo;
//   - Account: what a signed-in user does to their own account;
//   - Admin: what an administrator does to users, clients and the audit trail.
type (
	SignIn  struct{ *core }
	Account struct{ *core }
	Admin   struct{ *core }
)

// Service is every part over one Config: what the program wires its routes from, each route
// taking the part it serves (and what tests drive).
type Service struct {
	*core
	*SignIn
	*Grants
	*Account
	*Admin
}

// New makes the use cases from c.
func New(c Config) *Service {
	if c.ClientKeys == nil {
		c.ClientKeys = NewClientKeys(func() time.Time { return c.Now() })
	}
	co := &core{Config: c, resets: make(chan struct{}, resetSlots)}
	return &Service{core: co, SignIn: &SignIn{co}, Grants: newGrants(co), Account: &Account{co}, Admin: &Admin{co}}
}

// ScopeRule limits a scope: only members of one of Groups are granted it, at /authorize, /auth
// and every refresh (the configuration file's scopes section).
type ScopeRule struct {
	Groups []string `yaml:"groups"`
}
