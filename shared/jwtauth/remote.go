package jwtauth

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/time/rate"
)

// RemoteConfig configures RemoteKeys. Zero values take the defaults in brackets.
type RemoteConfig struct {
	Issuer          string        // its discovery document names the JWKS unless JWKSURL is set
	JWKSURL         string        // [from discovery]
	RefreshInterval time.Duration // [5m] scheduled refresh
	UnknownKIDEvery time.Duration // [1s] at most one refresh per this on an unknown kid
	HTTPTimeout     time.Duration // [2s] every fetch, and every wait for the rate limiter
	MaxBodyBytes    int64         // [1 MiB] larger discovery or JWKS answers are refused
	RetryInterval   time.Duration // [1s] between attempts while no keys were ever loaded
	Logger          *slog.Logger
}

// RemoteKeys is a KeySource over the issuer's JWKS, cached by keyfunc/v3: refreshed on a
// schedule and (rate-limited) on an unknown kid, and kept when the issuer is down, slow or
// answers garbage — or a 200 with no usable key, which keyfunc alone would take as the new set.
// Until the first good answer it is not ready and Key answers ErrKeysUnavailable; it keeps
// trying in the background, so a service started before its IdP turns ready by itself.
type RemoteKeys struct {
	cfg    RemoteConfig
	client *http.Client
	kf     atomic.Pointer[keyfunc.Keyfunc]
	stop   context.CancelFunc
	gen    atomic.Uint64 // bumped whenever the set of cached kids changes
	kids   atomic.Value  // string: the sorted kids of the cached set
}

// Generation implements Generational: it changes whenever a refresh changes the set of keys.
func (rk *RemoteKeys) Generation() uint64 { return rk.gen.Load() }

func (rk *RemoteKeys) keysReplaced(given []jwkset.JWK) {
	ids := make([]string, 0, len(given))
	for _, k := range given {
		ids = append(ids, k.Marshal().KID)
	}
	slices.Sort(ids)
	joined := strings.Join(ids, " ")
	if old, _ := rk.kids.Load().(string); old != joined {
		rk.kids.Store(joined)
		rk.gen.Add(1)
	}
}

// NewRemoteKeys starts loading keys in the background; it stops when ctx ends.
func NewRemoteKeys(ctx context.Context, cfg RemoteConfig) *RemoteKeys {
	rk := newRemoteKeys(cfg)
	go rk.load(ctx)
	return rk
}

// newRemoteKeys applies the defaults; nothing is loaded yet.
func newRemoteKeys(cfg RemoteConfig) *RemoteKeys {
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 5 * time.Minute
	}
	if cfg.UnknownKIDEvery <= 0 {
		cfg.UnknownKIDEvery = time.Second
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = 2 * time.Second
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rk := &RemoteKeys{cfg: cfg, client: &http.Client{
		Timeout:   cfg.HTTPTimeout,
		Transport: limitTransport{base: http.DefaultTransport, max: cfg.MaxBodyBytes},
		// The JWKS location is configuration: a redirect to elsewhere is not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	return rk
}

func (rk *RemoteKeys) load(ctx context.Context) {
	for {
		err := rk.start(ctx)
		if err == nil {
			rk.cfg.Logger.Info("issuer keys loaded", "issuer", rk.cfg.Issuer)
			return
		}
		rk.cfg.Logger.Warn("issuer keys not loaded yet, retrying", "issuer", rk.cfg.Issuer, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(rk.cfg.RetryInterval):
		}
	}
}

func (rk *RemoteKeys) start(ctx context.Context) error {
	jwksURL := rk.cfg.JWKSURL
	if jwksURL == "" {
		var err error
		if jwksURL, err = rk.discover(ctx); err != nil {
			return err
		}
	}
	// keyfunc starts its refresh goroutine before its first fetch; a failed attempt must stop it.
	attempt, cancel := context.WithCancel(ctx)
	store, err := jwkset.NewStorageFromHTTP(jwksURL, jwkset.HTTPClientStorageOptions{
		Client:          rk.client,
		Ctx:             attempt,
		HTTPTimeout:     rk.cfg.HTTPTimeout,
		RefreshInterval: rk.cfg.RefreshInterval,
		Storage:         guardedStorage{Storage: jwkset.NewMemoryStorage(), replaced: rk.keysReplaced},
		RefreshErrorHandler: func(_ context.Context, err error) {
			rk.cfg.Logger.Warn("JWKS refresh failed; keeping the cached keys", "url", jwksURL, "err", err)
		},
	})
	if err != nil {
		cancel()
		return err
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{jwksURL: store},
		RateLimitWaitMax:  rk.cfg.HTTPTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(rk.cfg.UnknownKIDEvery), 1),
	})
	if err != nil {
		cancel()
		return err
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: attempt, Storage: client})
	if err != nil {
		cancel()
		return err
	}
	rk.stop = cancel // the winning attempt lives as long as ctx
	rk.kf.Store(&kf)
	return nil
}

func (rk *RemoteKeys) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(rk.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := rk.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("discovery: %s answered %d", u, resp.StatusCode)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != rk.cfg.Issuer {
		return "", fmt.Errorf("discovery: document is for issuer %q, not %q", doc.Issuer, rk.cfg.Issuer)
	}
	if !strings.HasPrefix(doc.JWKSURI, "http://") && !strings.HasPrefix(doc.JWKSURI, "https://") {
		return "", fmt.Errorf("discovery: jwks_uri %q is not an http(s) URL", doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}

// Ready returns nil once keys have been loaded.
func (rk *RemoteKeys) Ready(context.Context) error {
	if rk.kf.Load() == nil {
		return ErrKeysUnavailable
	}
	return nil
}

// Key implements KeySource.
func (rk *RemoteKeys) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	kf := rk.kf.Load()
	if kf == nil {
		return nil, ErrKeysUnavailable
	}
	jwk, err := (*kf).Storage().KeyRead(ctx, kid)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownKey, err)
	}
	m := jwk.Marshal()
	if m.KTY != jwkset.KtyRSA || (m.USE != "" && m.USE != jwkset.UseSig) || (m.ALG != "" && m.ALG != jwkset.AlgRS256) {
		return nil, fmt.Errorf("%w: key %s is not an RS256 signing key", ErrUnknownKey, kid)
	}
	pub, ok := jwk.Key().(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key %s is not an RSA public key", ErrUnknownKey, kid)
	}
	return pub, nil
}

// guardedStorage refuses to replace the cached keys with a set that holds no usable RS256
// signing key, so an issuer answering {"keys":[]} (a bug, a bad deploy) cannot lock everyone
// out; the refresh fails instead and the old keys stay.
type guardedStorage struct {
	jwkset.Storage
	replaced func([]jwkset.JWK)
}

func (g guardedStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	for _, k := range given {
		m := k.Marshal()
		if _, ok := k.Key().(*rsa.PublicKey); ok && m.KTY == jwkset.KtyRSA && (m.USE == "" || m.USE == jwkset.UseSig) {
			if err := g.Storage.KeyReplaceAll(ctx, given); err != nil {
				return err
			}
			g.replaced(given)
			return nil
		}
	}
	return errors.New("JWKS holds no usable RS256 signing key")
}

// limitTransport fails a response whose body exceeds max bytes.
type limitTransport struct {
	base http.RoundTripper
	max  int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("%s: answer of %d bytes is over the %d-byte limit", req.URL, resp.ContentLength, t.max)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("answer is over the size limit")
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, errors.New("answer is over the size limit")
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
