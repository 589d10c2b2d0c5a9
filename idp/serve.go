package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"jwtidp/idp/auth"
	"jwtidp/idp/boltdb"
	"jwtidp/idp/httpapi"
	"jwtidp/idp/keys"
	"jwtidp/idp/password"
	"jwtidp/idp/token"
	"jwtidp/shared/envflag"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
)

// config is every setting of `idp serve`.
type config struct {
	addr, issuer, data, audience, adminToken, scope, logLevel string
	cookieDomain, redirectHosts, loginURL, defaultRedirect    string
	pprofAddr                                                 string
	tokenTTL, refreshTTL, hashWait                            time.Duration
	sessionTTL, sessionIdle, sessionCache, leeway, readHeader time.Duration
	throttle                                                  auth.ThrottlePolicy
	rateLimit, tokenRateLimit                                 float64
	rateBurst, tokenRateBurst                                 int
	trusted                                                   []netip.Prefix
	keys                                                      keys.Config
	hashSlots                                                 int
	argon                                                     password.Params
	version                                                   bool
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := envflag.New("idp serve", stderr)
	addr := fs.String("addr", "IDP_ADDR", defaultAddr, "listen address")
	issuer := fs.String("issuer", "IDP_ISSUER", "", "issuer URL (default http:// + the listen address)")
	data := fs.String("data", "IDP_DATA", "./data/idp", "data folder (the bbolt file lives inside)")
	tokenTTL := fs.Duration("token-ttl", "IDP_TOKEN_TTL", 15*time.Minute, "access-token lifetime")
	refreshTTL := fs.Duration("refresh-ttl", "IDP_REFRESH_TTL", 720*time.Hour, "refresh-token family lifetime (absolute)")
	audience := fs.String("audience", "IDP_AUDIENCE", "workitems", "access-token audience (comma-separated list)")
	scope := fs.String("scope", "IDP_SCOPE", "workitems:read workitems:write", "scope granted at login (space-separated)")
	keyRotation := fs.Duration("key-rotation", "IDP_KEY_ROTATION", 168*time.Hour, "signing-key rotation period (0 turns the schedule off)")
	keyBits := fs.Int("key-bits", "IDP_KEY_BITS", 2048, "RSA key size: 2048, 3072 or 4096")
	jwksMaxAge := fs.Duration("jwks-max-age", "IDP_JWKS_MAX_AGE", 5*time.Minute, "JWKS Cache-Control max-age (capped at the rotation period)")
	adminToken := fs.String("admin-token", "IDP_ADMIN_TOKEN", "", "admin credential (admin routes answer 404 until set)")
	adminTokenFile := fs.String("admin-token-file", "IDP_ADMIN_TOKEN_FILE", "", "file holding the admin credential, so it is not on the command line")
	mem := fs.Int("argon2-memory", "IDP_ARGON2_MEMORY", int(password.DefaultParams.Memory), "argon2id memory in KiB")
	iter := fs.Int("argon2-time", "IDP_ARGON2_TIME", int(password.DefaultParams.Time), "argon2id iterations")
	threads := fs.Int("argon2-threads", "IDP_ARGON2_THREADS", int(password.DefaultParams.Threads), "argon2id parallelism")
	hashSlots := fs.Int("hash-concurrency", "IDP_HASH_CONCURRENCY", runtime.GOMAXPROCS(0), "password hashes running at once")
	hashWait := fs.Duration("hash-wait", "IDP_HASH_WAIT", 2*time.Second, "longest wait for a hashing slot before 503")
	sessionTTL := fs.Duration("session-ttl", "IDP_SESSION_TTL", 12*time.Hour, "browser session lifetime (absolute)")
	sessionIdle := fs.Duration("session-idle-ttl", "IDP_SESSION_IDLE_TTL", 2*time.Hour, "a browser session unused this long ends (0: never)")
	sessionCache := fs.Duration("session-cache-ttl", "IDP_SESSION_CACHE_TTL", 5*time.Second, "longest a process believes a session without reading the store: the delay before a logout elsewhere takes effect")
	cookieDomain := fs.String("cookie-domain", "IDP_COOKIE_DOMAIN", "", "session cookie Domain, to share it with sibling hosts (e.g. example.com)")
	redirectHosts := fs.String("redirect-hosts", "IDP_REDIRECT_HOSTS", "", "hosts a login may return to (comma-separated; .example.com for subdomains)")
	loginURL := fs.String("login-url", "IDP_LOGIN_URL", "/login", "login page that /verify sends browsers to")
	defaultRedirect := fs.String("default-redirect", "IDP_DEFAULT_REDIRECT", "/", "where a login goes when rd is missing or not allowed")
	leeway := fs.Duration("leeway", "IDP_LEEWAY", 30*time.Second, "clock skew allowed on exp, nbf and iat when the IdP checks its own tokens")
	thFailures := fs.Int("throttle-failures", "IDP_THROTTLE_FAILURES", auth.DefaultThrottle.Failures, "failed logins per account before it is locked (0 turns throttling off)")
	thWindow := fs.Duration("throttle-window", "IDP_THROTTLE_WINDOW", auth.DefaultThrottle.Window, "window in which the failures count")
	thWait := fs.Duration("throttle-wait", "IDP_THROTTLE_WAIT", auth.DefaultThrottle.Wait, "first lockout; each further one doubles")
	thMax := fs.Duration("throttle-max-wait", "IDP_THROTTLE_MAX_WAIT", auth.DefaultThrottle.MaxWait, "longest lockout")
	thAccount := fs.Int("throttle-account-failures", "IDP_THROTTLE_ACCOUNT_FAILURES", auth.DefaultThrottle.AccountFailures, "failures for one account from all clients without its device cookie before attempts are spaced out (0: never)")
	thDelay := fs.Duration("throttle-account-delay", "IDP_THROTTLE_ACCOUNT_DELAY", auth.DefaultThrottle.AccountDelay, "spacing of such attempts once the account count is reached")
	thClient := fs.Int("throttle-client-failures", "IDP_THROTTLE_CLIENT_FAILURES", auth.DefaultThrottle.RemoteFailures, "failures from one client across accounts before it is locked out (0: never)")
	rateLimit := fs.Int("rate-limit", "IDP_RATE_LIMIT", 10, "requests per second per client on /signup, /auth, /login (0 turns it off)")
	rateBurst := fs.Int("rate-burst", "IDP_RATE_BURST", 30, "burst per client above the rate")
	tokenRateLimit := fs.Int("token-rate-limit", "IDP_TOKEN_RATE_LIMIT", 100, "requests per second per client on /token (0 turns it off)")
	tokenRateBurst := fs.Int("token-rate-burst", "IDP_TOKEN_RATE_BURST", 200, "burst per client on /token")
	trusted := fs.String("trusted-proxies", "IDP_TRUSTED_PROXIES", "", "proxies whose X-Forwarded-For is believed (comma-separated addresses or CIDRs)")
	readHeader := fs.Duration("read-header-timeout", "IDP_READ_HEADER_TIMEOUT", 5*time.Second, "time a client has to send its request headers (slow clients are cut off)")
	pprofAddr := fs.String("pprof-addr", "IDP_PPROF_ADDR", "", "serve Go profiling (pprof) on this address; off when empty")
	logLevel := fs.String("log-level", "IDP_LOG_LEVEL", "info", "debug, info, warn or error")
	ver := fs.Bool("version", "", false, "print the version and exit")
	if err := fs.Parse(args, getenv); err != nil {
		return c, err
	}
	c = config{
		addr: *addr, issuer: *issuer, data: *data, audience: *audience, adminToken: *adminToken, scope: *scope,
		logLevel: *logLevel, tokenTTL: *tokenTTL, refreshTTL: *refreshTTL, hashWait: *hashWait, hashSlots: *hashSlots, version: *ver,
		keys:       keys.Config{Bits: *keyBits, Rotation: *keyRotation, JWKSMaxAge: *jwksMaxAge},
		sessionTTL: *sessionTTL, cookieDomain: *cookieDomain, redirectHosts: *redirectHosts, loginURL: *loginURL,
		defaultRedirect: *defaultRedirect, leeway: *leeway, readHeader: *readHeader, pprofAddr: *pprofAddr,
		throttle: auth.ThrottlePolicy{Failures: *thFailures, Window: *thWindow, Wait: *thWait, MaxWait: *thMax,
			AccountFailures: *thAccount, AccountDelay: *thDelay, RemoteFailures: *thClient},
		rateLimit: float64(*rateLimit), rateBurst: *rateBurst,
		tokenRateLimit: float64(*tokenRateLimit), tokenRateBurst: *tokenRateBurst,
		sessionIdle: *sessionIdle, sessionCache: *sessionCache,
	}
	if c.version {
		return c, nil
	}
	var err error
	if c.trusted, err = web.ParsePrefixes(*trusted); err != nil {
		return c, fmt.Errorf("invalid --trusted-proxies (IDP_TRUSTED_PROXIES) %q: %v", *trusted, err)
	}
	if err := c.throttle.Validate(); err != nil {
		return c, fmt.Errorf("invalid --throttle-*: %v", err)
	}
	if *rateLimit < 0 || (*rateLimit > 0 && *rateBurst < 1) {
		return c, errors.New("invalid --rate-limit/--rate-burst: the rate must be 0 or more, the burst at least 1")
	}
	if *tokenRateLimit < 0 || (*tokenRateLimit > 0 && *tokenRateBurst < 1) {
		return c, errors.New("invalid --token-rate-limit/--token-rate-burst: the rate must be 0 or more, the burst at least 1")
	}
	if *adminTokenFile != "" {
		if c.adminToken != "" {
			return c, errors.New("invalid --admin-token-file (IDP_ADMIN_TOKEN_FILE): set it or --admin-token (IDP_ADMIN_TOKEN), not both")
		}
		b, err := os.ReadFile(*adminTokenFile)
		if err != nil {
			return c, fmt.Errorf("invalid --admin-token-file (IDP_ADMIN_TOKEN_FILE): %v", err)
		}
		if c.adminToken = strings.TrimSpace(string(b)); c.adminToken == "" {
			return c, fmt.Errorf("invalid --admin-token-file (IDP_ADMIN_TOKEN_FILE) %s: the file is empty", *adminTokenFile)
		}
	}
	if c.sessionIdle < 0 {
		return c, fmt.Errorf("invalid --session-idle-ttl (IDP_SESSION_IDLE_TTL) %s: must not be negative", c.sessionIdle)
	}
	if c.sessionCache < 0 || c.sessionCache > time.Minute {
		return c, fmt.Errorf("invalid --session-cache-ttl (IDP_SESSION_CACHE_TTL) %s: must be between 0 and 1m", c.sessionCache)
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return c, fmt.Errorf("invalid --addr (IDP_ADDR) %q: %v", c.addr, err)
	}
	if c.issuer != "" {
		if err := validateIssuer(c.issuer); err != nil {
			return c, fmt.Errorf("invalid --issuer (IDP_ISSUER) %q: %v", c.issuer, err)
		}
	}
	if c.data == "" {
		return c, errors.New("invalid --data (IDP_DATA): must name a folder")
	}
	if c.tokenTTL < time.Second {
		return c, fmt.Errorf("invalid --token-ttl (IDP_TOKEN_TTL) %s: must be at least 1s", c.tokenTTL)
	}
	if c.refreshTTL < c.tokenTTL {
		return c, fmt.Errorf("invalid --refresh-ttl (IDP_REFRESH_TTL) %s: must be at least the token TTL", c.refreshTTL)
	}
	if strings.TrimSpace(c.audience) == "" {
		return c, errors.New("invalid --audience (IDP_AUDIENCE): must name at least one audience")
	}
	if strings.TrimSpace(c.scope) == "" {
		return c, errors.New("invalid --scope (IDP_SCOPE): must not be empty")
	}
	if err := c.keys.Validate(); err != nil {
		return c, fmt.Errorf("invalid --key-bits/--key-rotation/--jwks-max-age: %v", err)
	}
	if *mem < 64 || *mem > 4<<20 || *iter < 1 || *iter > 64 || *threads < 1 || *threads > 255 {
		return c, errors.New("invalid --argon2-memory/--argon2-time/--argon2-threads: memory 64 KiB to 4 GiB, time 1 to 64, threads 1 to 255")
	}
	c.argon = password.Params{Memory: uint32(*mem), Time: uint32(*iter), Threads: uint8(*threads)}
	if c.hashSlots < 1 {
		return c, fmt.Errorf("invalid --hash-concurrency (IDP_HASH_CONCURRENCY) %d: must be at least 1", c.hashSlots)
	}
	if c.hashWait <= 0 {
		return c, fmt.Errorf("invalid --hash-wait (IDP_HASH_WAIT) %s: must be positive", c.hashWait)
	}
	if c.readHeader < 100*time.Millisecond {
		return c, fmt.Errorf("invalid --read-header-timeout (IDP_READ_HEADER_TIMEOUT) %s: at least 100ms", c.readHeader)
	}
	if c.sessionTTL < time.Second {
		return c, fmt.Errorf("invalid --session-ttl (IDP_SESSION_TTL) %s: must be at least 1s", c.sessionTTL)
	}
	if c.leeway < 0 || c.leeway > 10*time.Minute {
		return c, fmt.Errorf("invalid --leeway (IDP_LEEWAY) %s: must be between 0 and 10m", c.leeway)
	}
	if strings.ContainsAny(c.cookieDomain, " ;,/") {
		return c, fmt.Errorf("invalid --cookie-domain (IDP_COOKIE_DOMAIN) %q", c.cookieDomain)
	}
	if c.loginURL == "" || (c.loginURL[0] != '/' && validateIssuer(c.loginURL) != nil) {
		return c, fmt.Errorf("invalid --login-url (IDP_LOGIN_URL) %q: must be a path or an http(s) URL", c.loginURL)
	}
	if d := c.defaultRedirect; !(strings.HasPrefix(d, "/") && !strings.HasPrefix(d, "//")) && validateIssuer(d) != nil {
		return c, fmt.Errorf("invalid --default-redirect (IDP_DEFAULT_REDIRECT) %q: must be a path or an http(s) URL", d)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		return c, fmt.Errorf("invalid --log-level (IDP_LOG_LEVEL) %q: %v", c.logLevel, err)
	}
	return c, nil
}

func validateIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http or https URL")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must not have a query, fragment or user info")
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	if c.version {
		fmt.Fprintln(stdout, "idp", version)
		return nil
	}
	level, _ := parseLevel(c.logLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	db, err := boltdb.Open(c.data, time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetLogger(logger.With("component", "store"))

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on --addr %s: %w", c.addr, err)
	}
	defer ln.Close()
	if c.issuer == "" {
		c.issuer = "http://" + ln.Addr().String()
	}

	km, err := keys.New(ctx, db, keys.Options{
		Bits: c.keys.Bits, Policy: c.keys.Policy(c.tokenTTL),
		Now: time.Now, Random: rand.Reader, Logger: logger.With("component", "keys"),
	})
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "idp_logins_total", Help: "Logins by outcome."}, []string{"outcome"})
	slotWait := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "idp_password_hash_slot_wait_seconds", Help: "Time a password hash waited for a slot.",
		Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	reg.MustRegister(logins, slotWait)

	hasher, err := password.NewHasher(c.argon, c.hashSlots, c.hashWait, rand.Reader)
	if err != nil {
		return err
	}
	hasher.OnSlot = func(d time.Duration) { slotWait.Observe(d.Seconds()) }

	issuer := &token.Issuer{Issuer: c.issuer, TTL: c.tokenTTL, Keys: km, Now: time.Now, Random: rand.Reader}
	svc := &auth.Service{
		Users: db, Families: db, Hasher: hasher, Issuer: issuer,
		// The first-party client: /auth and the browser login act for it.
		FirstParty: auth.Client{ID: "idp", Scope: strings.Join(strings.Fields(c.scope), " "), Audience: splitList(c.audience)},
		RefreshTTL: c.refreshTTL, Now: time.Now, Random: rand.Reader, Logger: logger.With("component", "auth"),
		OnLogin:  func(outcome string) { logins.WithLabelValues(outcome).Inc() },
		Throttle: auth.NewThrottle(c.throttle, time.Now),
	}
	clients := web.ClientAddrs{Trusted: c.trusted}
	ready := web.NewReadiness(db.Ping)
	browserKey, err := db.Secret(ctx, "browser-key", randomBytes(32))
	if err != nil {
		return fmt.Errorf("browser key: %w", err)
	}
	secure := strings.HasPrefix(c.issuer, "https://")
	sessions := &auth.Sessions{
		Store: db, TTL: c.sessionTTL, IdleTTL: c.sessionIdle, CacheTTL: c.sessionCache,
		Now: time.Now, Random: rand.Reader, Logger: logger.With("component", "sessions"),
	}
	handler := httpapi.NewServer(httpapi.Deps{
		Logger: logger, Registry: reg, Auth: svc, Keys: km, Ready: ready, Issuer: c.issuer, JWKSMaxAge: c.keys.MaxAge(), AdminToken: c.adminToken, Store: db,
		Now: time.Now, LoginURL: c.loginURL, RemoteAddrs: clients, Sessions: sessions, BrowserKey: browserKey,
		Limiter:      web.NewRateLimiter(c.rateLimit, c.rateBurst, clients, time.Now),
		TokenLimiter: web.NewRateLimiter(c.tokenRateLimit, c.tokenRateBurst, clients, time.Now),
		Session: httpapi.SessionConfig{
			CookieName: httpapi.CookieNameFor(secure, c.cookieDomain), Domain: c.cookieDomain, TTL: c.sessionTTL,
			Secure: secure,
		},
		Redirects: httpapi.Redirects{Hosts: splitList(c.redirectHosts), Default: c.defaultRedirect},
		Verifier: jwtauth.NewVerifier(jwtauth.Config{Issuer: c.issuer, Leeway: c.leeway,
			Keys: jwtauth.LocalKeys{Lookup: km.PublicKey, Gen: km.Generation}, CacheSize: 10000}),
	})

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	if c.pprofAddr != "" {
		if err := web.ServePprof(bg, c.pprofAddr, logger); err != nil {
			return err
		}
	}
	go km.Run(bg)
	go svc.CollectGarbage(bg, time.Hour)
	go sessions.CollectGarbage(bg, time.Hour)
	go func() {
		// The start-up hash's 19 MiB is garbage once made: hand it back, so an idle IdP is small.
		hasher.Warm()
		debug.FreeOSMemory()
	}()

	kid, _ := km.Signer()
	logger.Info("listening", "addr", ln.Addr().String(), "issuer", c.issuer, "data", c.data, "kid", kid)
	err = web.Serve(ctx, web.NewServer(handler, logger, c.readHeader), ln, ready, 10*time.Second, logger)
	stopBG()
	logger.Info("stopped")
	return err
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
