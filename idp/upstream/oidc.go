package upstream

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"jwtidp/shared/apperr"
)

// discoveryRetry is how long a failed discovery is remembered before the upstream is asked
// again: a sign-in during an outage fails fast instead of waiting on the upstream each time.
const discoveryRetry = 5 * time.Second

// upstreamTimeout bounds each call to the upstream (discovery, the token endpoint).
const upstreamTimeout = 10 * time.Second

// ErrRefused is the generic refusal of an upstream sign-in whose token or code failed a check:
// the user is told only this; the check that failed is in the wrapped cause, for the log.
var ErrRefused = apperr.Errorf(apperr.EUNAUTHORIZED, "The sign-in through the other provider was refused")

// refused is ErrRefused's code and words with which check failed as its cause.
func refused(format string, args ...any) error {
	return apperr.Wrap(apperr.EUNAUTHORIZED, fmt.Errorf(format, args...), ErrRefused.Message)
}

// unavailable wraps ErrUnavailable with what went wrong, for the log.
func unavailable(id, what string, err error) error {
	return fmt.Errorf("connector %q: %s: %s: %w", id, what, short(err.Error()), ErrUnavailable)
}

// short cuts an upstream's words (an error page's body, say) to a log line's size.
func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// oidcConnector is an oidc connector: an OpenID provider found by discovery on first use.
type oidcConnector struct {
	cfg      Config
	redirect string
	client   *http.Client
	logger   *slog.Logger
	now      func() time.Time

	mu       sync.Mutex
	provider *oidc.Provider // nil until discovery succeeds
	// verifier checks ID tokens against the upstream's JWKS, which it caches (fetched again
	// for a kid it does not know): one for the connector's life, not one per sign-in.
	verifier *oidc.IDTokenVerifier
	failedAt time.Time // the last failed discovery
	failErr  error
}

// NewOIDC makes an oidc connector. It must not fail because the upstream is down: discovery
// happens on first use and is retried, so the IdP starts and local sign-in works without it.
func NewOIDC(c Config, redirectURL string, client *http.Client, logger *slog.Logger) (RedirectConnector, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &oidcConnector{cfg: c, redirect: redirectURL, client: client, logger: logger, now: time.Now}, nil
}

// discover returns the provider, asking the upstream's discovery document on first use and
// again after a failure once discoveryRetry has passed.
func (o *oidcConnector) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	if !o.failedAt.IsZero() && o.now().Sub(o.failedAt) < discoveryRetry {
		return nil, o.failErr
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.client), upstreamTimeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err == nil && (p.Endpoint().AuthURL == "" || p.Endpoint().TokenURL == "") {
		err = errors.New("the discovery document names no authorization or token endpoint")
	}
	if err != nil {
		o.failedAt, o.failErr = o.now(), unavailable(o.cfg.ID, "discovery", err)
		o.logger.Warn("upstream discovery failed", "issuer", o.cfg.Issuer, "err", short(err.Error()))
		return nil, o.failErr
	}
	o.verifier = p.VerifierContext(oidc.ClientContext(context.Background(), o.client), &oidc.Config{ClientID: o.cfg.ClientID, Now: o.now})
	o.provider, o.failedAt, o.failErr = p, time.Time{}, nil
	return p, nil
}

func (o *oidcConnector) oauth2Config(p *oidc.Provider) *oauth2.Config {
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader // client_secret_basic
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: ep,
		RedirectURL: o.redirect, Scopes: o.cfg.Scopes}
}

// AuthCodeURL is the upstream's authorization endpoint with state, nonce and PKCE S256; "" when
// the upstream cannot be discovered (Ready says why).
func (o *oidcConnector) AuthCodeURL(state, nonce, verifier string) string {
	p, err := o.discover(context.Background())
	if err != nil {
		return ""
	}
	return o.oauth2Config(p).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
}

// Ready discovers the upstream when it has not been yet: nil when AuthCodeURL can answer.
func (o *oidcConnector) Ready(ctx context.Context) error {
	_, err := o.discover(ctx)
	return err
}

// Exchange redeems code with verifier, verifies the ID token and maps its claims.
func (o *oidcConnector) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, o.client), upstreamTimeout)
	defer cancel()
	tok, err := o.oauth2Config(p).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 && re.ErrorCode != "" {
			// The upstream refused the code (invalid_grant: used, expired, the wrong verifier).
			return Identity{}, refused("token endpoint refused the code: %s", re.ErrorCode)
		}
		return Identity{}, unavailable(o.cfg.ID, "token endpoint", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, unavailable(o.cfg.ID, "token endpoint", errors.New("the token response holds no id_token"))
	}
	o.mu.Lock()
	v := o.verifier
	o.mu.Unlock()
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		if strings.Contains(err.Error(), "fetching keys") {
			return Identity{}, unavailable(o.cfg.ID, "jwks", err)
		}
		return Identity{}, refused("id token: %v", err)
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Identity{}, refused("id token: nonce mismatch")
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, refused("id token: claims: %v", err)
	}
	return o.identity(idt.Subject, claims)
}

// identity maps the ID token's claims by Config.Claims.
func (o *oidcConnector) identity(sub string, claims map[string]json.RawMessage) (Identity, error) {
	if sub == "" {
		return Identity{}, refused("id token: no sub")
	}
	id := Identity{Connector: o.cfg.ID, Subject: sub}
	str := func(name string) string {
		var s string
		if name != "" && claims[name] != nil && json.Unmarshal(claims[name], &s) == nil {
			return s
		}
		return ""
	}
	id.Username = str(o.cfg.Claims.Username)
	id.Email = str(o.cfg.Claims.Email)
	if raw := claims["email_verified"]; raw != nil && id.Email != "" {
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			id.EmailVerified = b
		} else {
			var s string // some providers say "true"
			id.EmailVerified = json.Unmarshal(raw, &s) == nil && s == "true"
		}
	}
	if name := o.cfg.Claims.Groups; name != "" && claims[name] != nil {
		var list []string
		if json.Unmarshal(claims[name], &list) == nil {
			id.Groups = list
		} else if s := str(name); s != "" {
			id.Groups = []string{s}
		}
	}
	return id, nil
}
