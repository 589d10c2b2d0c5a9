package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"jwtidp/idp/access"
	"jwtidp/idp/auth"
	"jwtidp/idp/boltdb"
	"jwtidp/idp/configfile"
	"jwtidp/idp/httpapi"
	"jwtidp/idp/identity"
	"jwtidp/idp/keys"
	"jwtidp/idp/mail"
	"jwtidp/idp/password"
	"jwtidp/idp/pgstore"
	"jwtidp/idp/seal"
	"jwtidp/idp/sign"
	"jwtidp/idp/token"
	"jwtidp/idp/upstream"
	"jwtidp/shared/envflag"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/service"
	"jwtidp/shared/web"
)

// config is the IdP's own settings; service.Settings has the common ones.
type config struct {
	issuer, audience, scope, adminToken, adminTokenFile    string
	clientsFile                                            string
	clients                                                []httpapi.ClientInfo // read from clientsFile
	cookieDomain, redirectHosts, loginURL, defaultRedirect string
	tokenTTL, refreshTTL, idTokenTTL, hashWait             time.Duration
	auditRetention                                         time.Duration
	sessionTTL, sessionIdle, sessionCache, leeway          time.Duration
	keys                                                   keys.Config
	throttle                                               auth.ThrottlePolicy
	argon                                                  password.Params
	hashSlots, hashQueue                                   int

	// The signing backend: --signer as given, the backend it chose and why (for the start-up
	// line). openssl loads libcrypto (nil: sign.OpenSSL); a test gives a library that is not there.
	signerChoice                                         string
	signer                                               sign.Backend
	signerWhy                                            string
	openssl                                              func() (sign.Backend, error)
	rateLimit, rateBurst, tokenRateLimit, tokenRateBurst int

	// Secrets at rest: the keys of --secrets-key-file, or seal.None when it is not set.
	secretsKeyFile string
	sealer         seal.Sealer

	// The mail server (the smtp section, --smtp-*): mail is off while smtp.Host is empty.
	smtp             mail.Config
	smtpPasswordFile string
	mailTemplatesDir string
	mailTemplates    *mail.Templates
	signupMode       string
	registrationMode string // --registration: closed or open (RFC 7591)
	signupDomains    string

	// The configuration file (--config): as read at start; what a reload re-reads (clients,
	// scopes, access rules) is live, swapped whole so a request reads one or the other.
	configFile string
	file       *configfile.File // nil without --config
	live       atomic.Pointer[liveConfig]
	reloading  sync.Mutex // one reload at a time (SIGHUP and POST /admin/reload)
	program    *service.Program
	fs         *envflag.Set // the settings as parsed: a reload checks the file under the same
}

// liveConfig is the part of the configuration file a reload replaces.
type liveConfig struct {
	file   *configfile.File // nil without --config
	scopes map[string]auth.ScopeRule
	access *access.Policy // nil: no access_control section, every signed-in user passes
}

func newLive(f *configfile.File) *liveConfig {
	if f == nil {
		return &liveConfig{}
	}
	return &liveConfig{file: f, scopes: f.Scopes, access: f.Access}
}

// program is the idp command line: `idp` and `idp serve` run the server, `idp keys` manages the
// signing keys of a running one and `idp clients` its registered OAuth clients.
// main runs it; a test runs it in its own process with program().Run (servicetest.Start).
func program() *service.Program { return programOf(&config{}) }

// defaultSigner is --signer's default; the tests' TestMain sets it from JWTIDP_TEST_SIGNER, so
// that CI runs the suite once per signer.
var defaultSigner = sign.ChooseAuto

// programOf is program over c, which its flags fill: a test may set what has no flag.
func programOf(c *config) *service.Program {
	p := &service.Program{
		Name: "idp", Version: version, Prefix: "IDP", DefaultAddr: "127.0.0.1:8080",
		Commands: map[string]service.Func{"keys": keysCmd, "clients": clientsCmd, "users": usersCmd, "groups": groupsCmd, "connectors": connectorsCmd, "audit": auditCmd, "store": pgdb.CopyCommand("idp", boltdb.OpenExisting, pgstore.Open, copyStore), "migrate": pgdb.MigrateCommand("idp", "IDP", pgstore.Schema)},
		Serve:    service.Service[store]{Flags: c.flags, Open: service.Stores(openBolt, openPostgres), Build: c.build},
	}
	c.program = p
	p.Commands["config"] = configCmd(p)
	p.Commands["login"] = loginCmd
	return p
}

// store is what the IdP keeps its data in: bbolt in --data, or PostgreSQL (--database-url)
// when several processes serve as replicas of one IdP.
type store interface {
	service.Store
	identity.Store
}

func (c *config) flags(fs *envflag.Set) {
	fs.StringVar(&c.issuer, "issuer", "IDP_ISSUER", "", "issuer URL (default http:// + the listen address)")
	fs.DurationVar(&c.tokenTTL, "token-ttl", "IDP_TOKEN_TTL", 15*time.Minute, "access-token lifetime")
	fs.DurationVar(&c.refreshTTL, "refresh-ttl", "IDP_REFRESH_TTL", 720*time.Hour, "refresh-token family lifetime (absolute)")
	fs.DurationVar(&c.idTokenTTL, "id-token-ttl", "IDP_ID_TOKEN_TTL", time.Hour, "OpenID Connect ID-token lifetime")
	fs.DurationVar(&c.auditRetention, "audit-retention", "IDP_AUDIT_RETENTION", 90*24*time.Hour, "how long audit events are kept (0: for ever)")
	fs.StringVar(&c.audience, "audience", "IDP_AUDIENCE", "workitems", "access-token audience (comma-separated list)")
	fs.StringVar(&c.scope, "scope", "IDP_SCOPE", "workitems:read workitems:write", "scope granted at login (space-separated)")
	fs.DurationVar(&c.keys.Rotation, "key-rotation", "IDP_KEY_ROTATION", 168*time.Hour, "signing-key rotation period (0 turns the schedule off)")
	fs.IntVar(&c.keys.Bits, "key-bits", "IDP_KEY_BITS", 2048, "RSA key size: 2048, 3072 or 4096")
	fs.StringVar(&c.signerChoice, "signer", "IDP_SIGNER", defaultSigner, "RS256 signing backend: auto (the system's OpenSSL 3 libcrypto when it loads, else Go's crypto/rsa), openssl (refuse to start without libcrypto 3) or go")
	fs.DurationVar(&c.keys.JWKSMaxAge, "jwks-max-age", "IDP_JWKS_MAX_AGE", 5*time.Minute, "JWKS Cache-Control max-age (capped at the rotation period)")
	fs.StringVar(&c.adminToken, "admin-token", "IDP_ADMIN_TOKEN", "", "admin credential (admin routes answer 404 until set)")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "IDP_ADMIN_TOKEN_FILE", "", "file holding the admin credential, so it is not on the command line")
	envflag.UintVar(fs, &c.argon.Memory, "argon2-memory", "IDP_ARGON2_MEMORY", password.DefaultParams.Memory, "argon2id memory in KiB")
	envflag.UintVar(fs, &c.argon.Time, "argon2-time", "IDP_ARGON2_TIME", password.DefaultParams.Time, "argon2id iterations")
	envflag.UintVar(fs, &c.argon.Threads, "argon2-threads", "IDP_ARGON2_THREADS", password.DefaultParams.Threads, "argon2id parallelism")
	fs.IntVar(&c.hashSlots, "hash-concurrency", "IDP_HASH_CONCURRENCY", runtime.GOMAXPROCS(0), "password hashes running at once")
	fs.DurationVar(&c.hashWait, "hash-wait", "IDP_HASH_WAIT", 2*time.Second, "longest wait for a hashing slot before 503")
	fs.IntVar(&c.hashQueue, "hash-queue", "IDP_HASH_QUEUE", 32*runtime.GOMAXPROCS(0), "password hashes that may wait for a slot; one more is a 503 at once (0: no bound but --hash-wait)")
	fs.DurationVar(&c.sessionTTL, "session-ttl", "IDP_SESSION_TTL", 12*time.Hour, "browser session lifetime (absolute)")
	fs.DurationVar(&c.sessionIdle, "session-idle-ttl", "IDP_SESSION_IDLE_TTL", 2*time.Hour, "a browser session unused this long ends (0: never)")
	fs.DurationVar(&c.sessionCache, "session-cache-ttl", "IDP_SESSION_CACHE_TTL", 5*time.Second, "longest a process believes a session, or a bearer token's user and client at /verify, without reading the store: the delay before a logout or disable elsewhere takes effect")
	fs.StringVar(&c.cookieDomain, "cookie-domain", "IDP_COOKIE_DOMAIN", "", "session cookie Domain, to share it with sibling hosts (e.g. example.com)")
	fs.StringVar(&c.redirectHosts, "redirect-hosts", "IDP_REDIRECT_HOSTS", "", "hosts a login may return to (comma-separated; .example.com for subdomains)")
	fs.StringVar(&c.loginURL, "login-url", "IDP_LOGIN_URL", "/login", "login page that /verify sends browsers to")
	fs.StringVar(&c.defaultRedirect, "default-redirect", "IDP_DEFAULT_REDIRECT", "/", "where a login goes when rd is missing or not allowed")
	fs.DurationVar(&c.leeway, "leeway", "IDP_LEEWAY", 30*time.Second, "clock skew allowed on exp, nbf and iat when the IdP checks its own tokens")
	th, def := &c.throttle, auth.DefaultThrottle
	fs.IntVar(&th.Failures, "throttle-failures", "IDP_THROTTLE_FAILURES", def.Failures, "failed logins per account before it is locked (0 turns throttling off)")
	fs.DurationVar(&th.Window, "throttle-window", "IDP_THROTTLE_WINDOW", def.Window, "window in which the failures count")
	fs.DurationVar(&th.Wait, "throttle-wait", "IDP_THROTTLE_WAIT", def.Wait, "first lockout; each further one doubles")
	fs.DurationVar(&th.MaxWait, "throttle-max-wait", "IDP_THROTTLE_MAX_WAIT", def.MaxWait, "longest lockout")
	fs.IntVar(&th.AccountFailures, "throttle-account-failures", "IDP_THROTTLE_ACCOUNT_FAILURES", def.AccountFailures, "failures for one account from all clients without its device cookie before attempts are spaced out (0: never)")
	fs.DurationVar(&th.AccountDelay, "throttle-account-delay", "IDP_THROTTLE_ACCOUNT_DELAY", def.AccountDelay, "spacing of such attempts once the account count is reached")
	fs.IntVar(&th.RemoteFailures, "throttle-client-failures", "IDP_THROTTLE_CLIENT_FAILURES", def.RemoteFailures, "failures from one client across accounts before it is locked out (0: never)")
	fs.IntVar(&th.CodeFailures, "throttle-code-failures", "IDP_THROTTLE_CODE_FAILURES", def.CodeFailures, "wrong one-time codes for one account, from any client, before its code step is locked (0: never)")
	fs.DurationVar(&th.CodeWindow, "throttle-code-window", "IDP_THROTTLE_CODE_WINDOW", def.CodeWindow, "window in which those codes count")
	fs.DurationVar(&th.CodeLock, "throttle-code-lock", "IDP_THROTTLE_CODE_LOCK", def.CodeLock, "how long the code step stays locked (a browser with the account's device cookie is not)")
	fs.IntVar(&c.rateLimit, "rate-limit", "IDP_RATE_LIMIT", 10, "requests per second per client on /signup, /auth, /login and the authorization requests kept for a page (0 turns it off)")
	fs.IntVar(&c.rateBurst, "rate-burst", "IDP_RATE_BURST", 30, "burst per client above the rate")
	fs.IntVar(&c.tokenRateLimit, "token-rate-limit", "IDP_TOKEN_RATE_LIMIT", 100, "requests per second per client on /token (0 turns it off)")
	fs.IntVar(&c.tokenRateBurst, "token-rate-burst", "IDP_TOKEN_RATE_BURST", 200, "burst per client on /token")
	fs.StringVar(&c.clientsFile, "clients", "IDP_CLIENTS", "", "JSON file of registered OAuth clients, each confidential one with its client_secret; applied at start (created or updated)")
	fs.StringVar(&c.secretsKeyFile, "secrets-key-file", "IDP_SECRETS_KEY_FILE", "", "file of keys sealing secrets at rest (signing keys, TOTP seeds): one per line, 64 hex characters (openssl rand -hex 32), the first seals, every one opens")
	fs.StringVar(&c.configFile, "config", "IDP_CONFIG", "", "YAML configuration `file`: a key for every setting (its flag's name with _ for -; a flag or variable wins), clients, scopes limited to groups, access rules; SIGHUP or POST /admin/reload re-reads its clients, scopes and rules")
	fs.Layer(func() ([]envflag.FileValue, error) { return c.readConfig(fileKeys(fs)) })
	c.fs = fs
	fs.Secret("admin-token")
	fs.StringVar(&c.smtp.Host, "smtp-host", "IDP_SMTP_HOST", "", "SMTP server that mail (verification, password reset, invitations, notices) goes out through; mail is off without it")
	fs.IntVar(&c.smtp.Port, "smtp-port", "IDP_SMTP_PORT", 587, "SMTP server port")
	fs.StringVar(&c.smtp.TLS, "smtp-tls", "IDP_SMTP_TLS", mail.TLSStartTLS, "starttls, implicit (port 465) or none (only to a loopback host)")
	fs.StringVar(&c.smtp.Username, "smtp-username", "IDP_SMTP_USERNAME", "", "SMTP AUTH user (with --smtp-password-file)")
	fs.StringVar(&c.smtpPasswordFile, "smtp-password-file", "IDP_SMTP_PASSWORD_FILE", "", "file holding the SMTP AUTH password")
	fs.StringVar(&c.signupMode, "signup", "IDP_SIGNUP", auth.SignupOpen, "who may sign up: open, invite (only with an invitation: idp users invite) or closed; an invitation works in every mode")
	fs.StringVar(&c.registrationMode, "registration", "IDP_REGISTRATION", auth.RegistrationClosed, "dynamic client registration (POST /register): closed (only with an initial access token: idp clients registration-token) or open (anyone, for loopback http or https redirect URIs)")
	fs.StringVar(&c.signupDomains, "signup-email-domains", "IDP_SIGNUP_EMAIL_DOMAINS", "", "with an open sign-up, the only email domains it takes (comma-separated; an address is then required)")
	fs.StringVar(&c.mailTemplatesDir, "mail-templates", "IDP_MAIL_TEMPLATES", "", "folder of mail templates replacing the built-in ones (notice.txt, notice.html …)")
	fs.StringVar(&c.smtp.From, "smtp-from", "IDP_SMTP_FROM", "", `the sender of the IdP's mail: "Example login <login@example.com>"`)

	// The packages that own a value validate it; the rest are the IdP's own rules.
	fs.Check(func() error { return c.keys.Validate() }, "key-bits", "key-rotation", "jwks-max-age")
	fs.Check(func() error { return c.throttle.Validate() }, "throttle-failures", "throttle-window", "throttle-wait",
		"throttle-max-wait", "throttle-account-failures", "throttle-account-delay", "throttle-client-failures",
		"throttle-code-failures", "throttle-code-window", "throttle-code-lock")
	fs.Check(func() error {
		// Sanity bounds password.Params.Validate does not have: beyond them one hash would
		// take the machine.
		if c.argon.Memory > 4<<20 || c.argon.Time > 64 {
			return errors.New("memory at most 4 GiB (4194304 KiB), time at most 64")
		}
		return c.argon.Validate()
	}, "argon2-memory", "argon2-time", "argon2-threads")
	fs.Check(c.chooseSigner, "signer")
	fs.Check(c.loadAdminToken, "admin-token-file")
	fs.Check(c.loadClients, "clients")
	fs.Check(func() error { return clientsOverlap(c.clients, c.file) }, "clients", "config")
	fs.Check(c.loadSecretsKey, "secrets-key-file")
	fs.Check(c.loadSMTP, "smtp-host", "smtp-port", "smtp-tls", "smtp-username", "smtp-password-file", "smtp-from")
	fs.Check(func() (err error) { c.mailTemplates, err = mail.LoadTemplates(c.mailTemplatesDir); return err }, "mail-templates")
	const rate = "be 0 or more (the rate), at least 1 (the burst)"
	fs.Require(func() bool { return validRate(c.rateLimit, c.rateBurst) }, rate, "rate-limit", "rate-burst")
	fs.Require(func() bool { return validRate(c.tokenRateLimit, c.tokenRateBurst) }, rate, "token-rate-limit", "token-rate-burst")
	fs.Require(func() bool {
		return slices.Contains([]string{auth.SignupOpen, auth.SignupInvite, auth.SignupClosed}, c.signupMode)
	}, "be open, invite or closed", "signup")
	fs.Require(func() bool {
		return c.registrationMode == auth.RegistrationClosed || c.registrationMode == auth.RegistrationOpen
	}, "be closed or open", "registration")
	fs.Require(func() bool {
		for _, d := range splitList(c.signupDomains) {
			if identity.ValidateEmail("x@"+d) != nil || strings.Contains(d, "@") {
				return false
			}
		}
		return true
	}, "be domain names, comma-separated", "signup-email-domains")
	fs.Require(func() bool { return c.tokenTTL >= time.Second }, "be at least 1s", "token-ttl")
	fs.Require(func() bool { return c.refreshTTL >= c.tokenTTL }, "be at least the token TTL", "refresh-ttl")
	fs.Require(func() bool { return c.idTokenTTL >= time.Minute && c.idTokenTTL <= 24*time.Hour }, "be between 1m and 24h", "id-token-ttl")
	fs.Require(func() bool { return c.auditRetention == 0 || c.auditRetention >= time.Hour }, "be 0 (for ever) or at least 1h", "audit-retention")
	fs.Require(func() bool { return c.sessionTTL >= time.Second }, "be at least 1s", "session-ttl")
	fs.Require(func() bool { return c.sessionIdle >= 0 }, "not be negative", "session-idle-ttl")
	fs.Require(func() bool { return c.sessionCache >= 0 && c.sessionCache <= time.Minute }, "be between 0 and 1m", "session-cache-ttl")
	fs.Require(func() bool { return c.leeway >= 0 && c.leeway <= 10*time.Minute }, "be between 0 and 10m", "leeway")
	fs.Require(func() bool { return c.hashSlots >= 1 }, "be at least 1", "hash-concurrency")
	fs.Require(func() bool { return c.hashWait > 0 }, "be positive", "hash-wait")
	fs.Require(func() bool { return c.hashQueue >= 0 }, "be 0 or more", "hash-queue")
	fs.Require(func() bool { return strings.TrimSpace(c.audience) != "" }, "name at least one audience", "audience")
	fs.Require(func() bool { return strings.TrimSpace(c.scope) != "" }, "not be empty", "scope")
	fs.Require(func() bool { return !strings.ContainsAny(c.cookieDomain, " ;,/") }, "be a domain name", "cookie-domain")
	fs.Check(func() error {
		if c.issuer == "" {
			return nil
		}
		return httpURL(c.issuer)
	}, "issuer")
	fs.Require(func() bool {
		return strings.HasPrefix(c.loginURL, "/") || httpURL(c.loginURL) == nil
	}, "be a path or an http(s) URL", "login-url")
	fs.Require(func() bool {
		d := c.defaultRedirect
		return (strings.HasPrefix(d, "/") && !strings.HasPrefix(d, "//")) || httpURL(d) == nil
	}, "be a path or an http(s) URL", "default-redirect")
}

// chooseSigner loads the signing backend --signer names: with auto, OpenSSL when libcrypto 3
// loads, else Go (the start-up line says why); with openssl, an error when it cannot load.
func (c *config) chooseSigner() (err error) {
	openssl := c.openssl
	if openssl == nil {
		openssl = sign.OpenSSL
	}
	c.signer, c.signerWhy, err = sign.ChooseWith(c.signerChoice, openssl)
	return err
}

// loadAdminToken reads --admin-token-file, if set, into adminToken.
func (c *config) loadAdminToken() error {
	if c.adminTokenFile == "" {
		return nil
	}
	if c.adminToken != "" {
		return errors.New("set it or admin_token (--admin-token, IDP_ADMIN_TOKEN), not both")
	}
	b, err := os.ReadFile(c.adminTokenFile)
	if err != nil {
		return err
	}
	if c.adminToken = strings.TrimSpace(string(b)); c.adminToken == "" {
		return errors.New("the file is empty")
	}
	return nil
}

// loadSMTP reads --smtp-password-file, if set, and checks the mail server's settings: all of
// them when a host is set, and none but the defaults when it is not (a From or a password
// without a server would say mail goes out when it does not).
func (c *config) loadSMTP() error {
	if c.smtp.Host == "" {
		if c.smtp.From != "" || c.smtp.Username != "" || c.smtpPasswordFile != "" {
			return errors.New("smtp host is not set: mail is off, so the other smtp settings would do nothing")
		}
		return nil
	}
	if c.smtpPasswordFile != "" {
		b, err := os.ReadFile(c.smtpPasswordFile)
		if err != nil {
			return err
		}
		if c.smtp.Password = strings.TrimRight(string(b), "\r\n"); c.smtp.Password == "" {
			return errors.New("the smtp password file is empty")
		}
	}
	if c.smtp.From == "" {
		return errors.New("smtp from is required with an smtp host: the address the IdP's mail comes from")
	}
	return c.smtp.Validate()
}

// loadSecretsKey reads --secrets-key-file, if set, into sealer (seal.None otherwise). Its
// errors name a bad line by its number and never show the file's content.
func (c *config) loadSecretsKey() error {
	c.sealer = seal.None()
	if c.secretsKeyFile == "" {
		return nil
	}
	ring, err := seal.LoadKeyFile(c.secretsKeyFile)
	if err != nil {
		return err
	}
	c.sealer = ring
	return nil
}

// secretsLog says, for the start-up lines, how secrets are stored.
func (c *config) secretsLog() []any {
	if ring, ok := c.sealer.(*seal.Ring); ok {
		return []any{"secrets", "sealed", "secrets_key", ring.IDs()[0].String()}
	}
	return []any{"secrets", "unencrypted"}
}

// loadClients reads and checks --clients, if set: a JSON array of client objects (API.md), with
// no unknown member and no client twice. Errors name the client; none carries a secret.
func (c *config) loadClients() error {
	if c.clientsFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.clientsFile)
	if err != nil {
		return err
	}
	clients, err := configfile.ParseClients(b)
	c.clients = clients
	return err
}

// readConfig reads --config, if set, into file: its settings are envflag's layer below the
// command line and the environment.
func (c *config) readConfig(keys map[string]string) ([]envflag.FileValue, error) {
	if c.configFile == "" {
		return nil, nil
	}
	f, err := configfile.Read(c.configFile, keys)
	c.file = f
	if f == nil {
		return nil, err
	}
	return f.Settings, err
}

// fileKeys are the settings a configuration file may set: all but --config itself and
// --clients, a file's name, whose key is the file's own clients section.
func fileKeys(fs *envflag.Set) map[string]string {
	keys := fs.FileKeys()
	delete(keys, "config")
	delete(keys, "clients")
	return keys
}

// clientsOverlap refuses a client both in the --clients file and the configuration file's
// clients section: which one is meant would depend on the order they are applied in.
func clientsOverlap(clients []httpapi.ClientInfo, f *configfile.File) error {
	if f == nil {
		return nil
	}
	for _, ci := range clients {
		if where, ok := f.ClientLines[ci.ClientID]; ok {
			return fmt.Errorf("client %q is also in the configuration file (%s): declare it in one of them", ci.ClientID, where)
		}
	}
	return nil
}

// declareClients makes the stored clients match a clients file (from, in errors): each is
// created or updated; an unchanged one is left alone.
func declareClients(ctx context.Context, svc *auth.Service, clients []httpapi.ClientInfo, from string) error {
	for _, ci := range clients {
		if _, err := svc.DeclareClient(ctx, ci.Client(), ci.ClientSecret); err != nil {
			return fmt.Errorf("%s: client %q: %v", from, ci.ClientID, err)
		}
	}
	return nil
}

func validRate(limit, burst int) bool { return limit == 0 || (limit > 0 && burst >= 1) }

// httpURL checks an absolute http(s) URL as the issuer and redirects need it.
func httpURL(s string) error {
	u, err := service.HTTPURL(s)
	if err == nil && (u.RawQuery != "" || u.Fragment != "" || u.User != nil) {
		err = errors.New("must not have a query, fragment or user info")
	}
	return err
}

// build wires the IdP on its open store.
func (c *config) build(ctx context.Context, r *service.Running[store]) (service.App, error) {
	db, logger := r.Store, r.Logger
	if c.issuer == "" {
		c.issuer = "http://" + r.Addr
	}
	now := r.Clock.Now
	c.live.Store(newLive(c.file))
	if c.secretsKeyFile == "" {
		logger.Warn("secrets are stored unencrypted: set --secrets-key-file", "secrets", "unencrypted")
	}
	// The IdP's own work (the first keys, the rotation schedule, the clients file) is the
	// system's in the audit trail.
	ctx = auth.WithActor(ctx, auth.ActorSystem)
	auditLogger := logger.With("component", "audit")
	km, err := keys.New(ctx, db, keys.Options{
		Bits: c.keys.Bits, Policy: c.keys.Policy(c.tokenTTL),
		Now: now, After: r.Clock.After, Random: rand.Reader, Logger: logger.With("component", "keys"),
		Sealer: c.sealer, Backend: c.signer,
		Audit: keys.Audit{
			Event: func(ctx context.Context, typ, detail string) identity.AuditEvent {
				return auth.Event(ctx, now(), typ, "", auth.Success, detail)
			},
			Log: func(ctx context.Context, events ...identity.AuditEvent) { auth.LogAudit(ctx, auditLogger, events...) },
		},
	})
	if err != nil {
		if uk := (*seal.UnknownKeyError)(nil); errors.As(err, &uk) {
			err = fmt.Errorf("%w: --secrets-key-file (IDP_SECRETS_KEY_FILE) must hold the key that sealed the signing keys", err)
		}
		return service.App{}, err
	}

	logins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idp_logins_total", Help: "Logins by outcome."}, []string{"outcome"})
	slotWait := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "idp_password_hash_slot_wait_seconds", Help: "Time a password hash waited for a slot.",
		Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	lockouts := prometheus.NewCounter(prometheus.CounterOpts{Name: "idp_lockouts_total", Help: "Attempts (password, one-time code) refused because the account, the client or the device is locked out or spaced out by the throttle."})
	reuse := prometheus.NewCounter(prometheus.CounterOpts{Name: "idp_refresh_reuse_total", Help: "Spent refresh tokens presented again: each revoked its family."})
	factorFailures := prometheus.NewCounter(prometheus.CounterOpts{Name: "idp_second_factor_failures_total", Help: "Second-factor codes (TOTP or recovery) given and refused; a login that gives none is not counted."})
	live := auth.NewLiveSessions(db, db, now, time.Minute, logger.With("component", "sessions"))
	activeSessions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idp_sessions_active", Help: "Live browser sessions in the store (every replica's), as last counted: a scrape never reads the store, it has it counted in the background when the count is over a minute old, so the value is that of the scrape before when that count was due."}, live.Value)
	signer := prometheus.NewGauge(prometheus.GaugeOpts{Name: "idp_signer_info", Help: "The signing backend (label signer: go, or openssl for the system's libcrypto), chosen at start by --signer; always 1.",
		ConstLabels: prometheus.Labels{"signer": km.SignerName()}})
	signer.Set(1)
	r.Registry.MustRegister(logins, slotWait, lockouts, reuse, factorFailures, activeSessions, signer)
	throttle := auth.NewThrottle(c.throttle, now, throttleStore(db))
	throttle.Codes = db // per account in the store, bbolt's too: every replica adds to one count
	throttle.OnLockout = lockouts.Inc

	hasher, err := password.NewHasher(c.argon, c.hashSlots, c.hashWait, rand.Reader)
	if err != nil {
		return service.App{}, err
	}
	hasher.OnSlot = func(d time.Duration) { slotWait.Observe(d.Seconds()) }
	hasher.MaxWaiting = c.hashQueue

	issuer := &token.Issuer{Issuer: c.issuer, TTL: c.tokenTTL, Keys: km, Now: now, Random: rand.Reader}
	// The outbox: mail (when there is an SMTP server) and back-channel logout notices, queued in
	// the store with their cause and sent by every replica's outbox.
	outbox := mail.NewOutbox(db, nil, r.Clock, logger.With("component", "mail"), r.Registry)
	outbox.Logouts = &mail.Backchannel{Signer: issuer}
	ending := endingStore{store: db, wake: outbox.Wake} // wakes the outbox when sessions end
	sessions := &auth.Sessions{
		Store: ending, TTL: c.sessionTTL, IdleTTL: c.sessionIdle, CacheTTL: c.sessionCache,
		Now: now, Random: rand.Reader, Logger: logger.With("component", "sessions"), Users: db, Clients: db, Groups: db,
	}
	// Mail: queued in the store with its cause, sent by every replica's outbox.
	var mailer auth.Mailer
	if c.smtp.Host != "" {
		sender, err := mail.New(c.smtp, logger.With("component", "mail"))
		if err != nil {
			return service.App{}, err
		}
		outbox.Sender = sender.WithClock(now)
		mailer = &mail.Composer{Templates: c.mailTemplates, Issuer: c.issuer, Random: rand.Reader, Now: now, Wake: outbox.Wake}
		logger.Info("mail goes out through the SMTP server", "smtp", net.JoinHostPort(c.smtp.Host, strconv.Itoa(c.smtp.Port)), "tls", c.smtp.TLS)
	} else {
		logger.Info("mail is off: no --smtp-host (smtp section)")
	}
	up, err := c.connectors(logger)
	if err != nil {
		return service.App{}, err
	}
	upstreamKey, err := db.Secret(ctx, "upstream-key", randomBytes(32))
	if err != nil {
		return service.App{}, fmt.Errorf("upstream key: %w", err)
	}
	// The IdP's own access tokens: /userinfo's and the token exchange's subject tokens.
	ownTokens := jwtauth.NewVerifier(jwtauth.Config{Issuer: c.issuer, Leeway: c.leeway, Now: now,
		Keys: jwtauth.LocalKeys{Lookup: km.PublicKey, Gen: km.Generation}, CacheSize: 10000})
	svc := auth.New(auth.Config{
		Users: ending, Families: db, Clients: db, Groups: db, Codes: db, DeviceCodes: db, Consents: db, Sessions: ending, AuthRequests: db, Links: db, Assertions: db, IDTokenTTL: c.idTokenTTL,
		Audit: db, AuditRetention: c.auditRetention,
		RegistrationTokens: db, RegistrationMode: c.registrationMode,
		Hasher: hasher, Issuer: issuer, VerifyAccess: ownTokens.Verify,
		// The first-party client: /auth and the browser login act for it.
		FirstParty: auth.Client{ID: "idp", Scope: strings.Join(strings.Fields(c.scope), " "), Audience: splitList(c.audience)},
		RefreshTTL: c.refreshTTL, Now: now, Random: rand.Reader, Logger: logger.With("component", "auth"), Browser: sessions,
		OnLogin:       func(outcome string) { logins.WithLabelValues(outcome).Inc() },
		Throttle:      throttle,
		Mail:          mailer,
		SignupMode:    c.signupMode,
		SignupDomains: lowerAll(splitList(c.signupDomains)),
		Connectors:    up.configs, Directories: up.directories, PasswordBackends: up.backends,
		Statuses: up.statuses, UpstreamKey: upstreamKey, Federations: db,
		Sealer:         c.sealer, // seals TOTP seeds as keys.Options.Sealer seals the signing keys
		OnRefreshReuse: reuse.Inc, OnSecondFactorFailure: factorFailures.Inc,
		Scopes: func() map[string]auth.ScopeRule {
			if live := c.live.Load(); live != nil {
				return live.scopes
			}
			return nil
		},
	})
	if _, keyed := c.sealer.(*seal.Ring); keyed {
		// The TOTP half of the secrets key's rotation (the key manager reseals the signing keys).
		n, err := svc.ResealTOTP(ctx)
		if uk := (*seal.UnknownKeyError)(nil); errors.As(err, &uk) {
			err = fmt.Errorf("%w: --secrets-key-file (IDP_SECRETS_KEY_FILE) must hold the key that sealed it", err)
		}
		if err != nil {
			return service.App{}, err
		}
		if n > 0 {
			logger.Info("TOTP seeds resealed with the first secrets key", "users", n)
		}
	}
	if err := declareClients(ctx, svc, c.clients, "--clients (IDP_CLIENTS)"); err != nil {
		return service.App{}, err
	}
	var reload func(context.Context) error
	if c.file != nil {
		if err := declareClients(ctx, svc, c.file.Clients, c.configFile); err != nil {
			return service.App{}, err
		}
		reload = func(ctx context.Context) error { return c.reload(ctx, svc, logger) }
		r.OnHangup(func(ctx context.Context) {
			reload(auth.WithActor(ctx, auth.ActorSystem)) // logged and audited either way
		})
	}
	clients := r.Settings.Clients
	if c.file != nil && c.file.Access != nil && len(clients.Trusted) == 0 {
		logger.Warn("access rules are set but --trusted-proxies is not: /verify refuses every request, since only a trusted proxy can say which request it asks about")
	}
	browserKey, err := db.Secret(ctx, "browser-key", randomBytes(32))
	if err != nil {
		return service.App{}, fmt.Errorf("browser key: %w", err)
	}
	secure := strings.HasPrefix(c.issuer, "https://")
	handler := httpapi.NewServer(httpapi.Deps{
		Logger: logger, Registry: r.Registry, Auth: svc, Keys: km, Ready: r.Ready, Issuer: c.issuer, Scopes: strings.Fields(c.scope), JWKSMaxAge: c.keys.MaxAge(), AdminToken: c.adminToken, Store: web.SnapshotterOf(db),
		IDTokenHints: func(raw string) (token.IDClaims, error) { return issuer.ParseIDTokenHint(raw, km.PublicKey) },
		ScopeText:    scopeText,
		Access:       func() *access.Policy { return c.live.Load().access },
		Reload:       reload,
		Now:          now, LoginURL: c.loginURL, RemoteAddrs: clients, Sessions: sessions, BrowserKey: browserKey,
		Limiter:      web.NewRateLimiter(float64(c.rateLimit), c.rateBurst, clients, now),
		TokenLimiter: web.NewRateLimiter(float64(c.tokenRateLimit), c.tokenRateBurst, clients, now),
		Session: httpapi.SessionConfig{
			CookieName: httpapi.CookieNameFor(secure, c.cookieDomain), Domain: c.cookieDomain, TTL: c.sessionTTL,
			Secure: secure,
		},
		Redirects: httpapi.Redirects{Hosts: splitList(c.redirectHosts), Default: c.defaultRedirect},
		Upstreams: up.redirects, UpstreamConfigs: up.ordered, UpstreamStatuses: up.statuses,
		Verifier: ownTokens,
	})

	r.Go(func(ctx context.Context) { km.Run(auth.WithActor(ctx, auth.ActorSystem)) })
	if r.Settings.Replicated() {
		// Another replica may rotate or revoke: follow the stored keys within a second.
		r.Go(func(ctx context.Context) { km.Follow(ctx, time.Second) })
	}
	r.Go(func(ctx context.Context) { svc.CollectGarbage(ctx, time.Hour) })
	r.Go(outbox.Run)
	r.Go(func(ctx context.Context) { sessions.CollectGarbage(ctx, time.Hour) })
	r.Go(live.Run)
	r.Go(func(context.Context) {
		// The start-up hash's 19 MiB is not needed once it is made: hand it back, so an idle IdP
		// is small.
		hasher.Warm()
		hasher.ReleaseMemory()
	})

	kid := km.CurrentKID()
	where := []any{"data", r.Settings.Data}
	if r.Settings.Replicated() {
		where = []any{"store", "postgres"}
	}
	return service.App{Handler: handler, Log: append(append(append([]any{"issuer", c.issuer}, where...), "kid", kid, "signer", km.SignerName(), "signer_reason", c.signerWhy), c.secretsLog()...)}, nil
}

// connectors are the configuration file's upstream identity providers, made.
type connectors struct {
	configs     map[string]upstream.Config
	directories map[string]upstream.PasswordConnector
	redirects   map[string]upstream.RedirectConnector
	ordered     []upstream.Config // the file's order: the login page's buttons
	backends    []string
	statuses    *upstream.Statuses
}

// connectors reads each connector's secret files and makes it; none connects to its upstream
// here, so an upstream that is down does not stop the IdP.
func (c *config) connectors(logger *slog.Logger) (connectors, error) {
	up := connectors{configs: map[string]upstream.Config{}, directories: map[string]upstream.PasswordConnector{},
		redirects: map[string]upstream.RedirectConnector{}}
	if c.file == nil {
		up.statuses = upstream.NewStatuses(nil)
		return up, nil
	}
	// Every request to an upstream is bounded, key fetches included (go-oidc's key set fetches
	// with the client it was made with).
	upstreamClient := &http.Client{Timeout: 10 * time.Second}
	for _, cc := range c.file.Connectors {
		if err := cc.Load(); err != nil {
			return up, err
		}
		log := logger.With("component", "connector", "connector", cc.ID)
		switch cc.Type {
		case upstream.TypeOIDC:
			redirect := strings.TrimSuffix(c.issuer, "/") + "/login/upstream/" + cc.ID + "/callback"
			rc, err := upstream.NewOIDC(cc, redirect, upstreamClient, log)
			if err != nil {
				return up, err
			}
			up.redirects[cc.ID] = rc
		case upstream.TypeLDAP:
			pc, err := upstream.NewLDAP(cc, log)
			if err != nil {
				return up, err
			}
			up.directories[cc.ID] = pc
		}
		up.configs[cc.ID] = cc
		up.ordered = append(up.ordered, cc)
	}
	up.backends = c.file.PasswordBackends
	up.statuses = upstream.NewStatuses(up.ordered)
	return up, nil
}

// scopeText is how the consent page names the first-party scopes of the default --scope; a
// scope not named here is shown by its name.
var scopeText = map[string]string{
	"workitems:read":  "Read your work items",
	"workitems:write": "Create, change and delete your work items",
	"workitems:admin": "See every user's work items",
}

// endingStore is the store for the writes that end sessions: after one succeeds it wakes the
// outbox, which sends the back-channel logout notices queued with it at once.
type endingStore struct {
	store
	wake func()
}

func (e endingStore) EndSession(ctx context.Context, id string) (identity.Session, error) {
	sess, err := e.store.EndSession(ctx, id)
	if err == nil {
		e.wake()
	}
	return sess, err
}

func (e endingStore) ChangeCredentials(ctx context.Context, id string, fn func(identity.User) (identity.User, error), keep ...string) (identity.User, error) {
	u, err := e.store.ChangeCredentials(ctx, id, fn, keep...)
	if err == nil {
		e.wake()
	}
	return u, err
}

func (e endingStore) DeleteUser(ctx context.Context, id string) error {
	err := e.store.DeleteUser(ctx, id)
	if err == nil {
		e.wake()
	}
	return err
}

// throttleStore is where login failures are counted: in the database replicas share, or in
// this process's memory when it alone opens its store (bbolt).
func throttleStore(db store) identity.ThrottleStore {
	if ts, ok := db.(identity.ThrottleStore); ok {
		return ts
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func openBolt(dir string, lockTimeout time.Duration) (store, error) {
	return boltdb.Open(dir, lockTimeout)
}

func openPostgres(ctx context.Context, cfg pgdb.Config, logger *slog.Logger) (store, error) {
	return pgstore.Open(ctx, cfg, logger)
}

// lowerAll is l in lower case: domains compare so.
func lowerAll(l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = strings.ToLower(s)
	}
	return out
}
