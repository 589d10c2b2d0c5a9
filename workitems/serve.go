package main

import (
	"context"
	"errors"
	"jwtidp/shared/pgdb"
	"jwtidp/shared/web"
	"jwtidp/workitems/pgstore"
	"jwtidp/workitems/workitem"
	"log/slog"
	"time"

	"jwtidp/shared/envflag"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/service"
	"jwtidp/workitems/boltdb"
	"jwtidp/workitems/httpapi"
)

// config is the service's own settings; service.Settings has the common ones.
type config struct {
	issuer, jwksURL, audience, adminToken string
	resource                              string // RFC 9728's resource; "": this service's URL as a request reaches it
	leeway, jwksRefresh                   time.Duration
}

// program is the workitems command line: `workitems` and `workitems serve` run the service.
// main runs it; a test runs it in its own process with program().Run (servicetest.Start).
func program() *service.Program {
	c := &config{}
	return &service.Program{
		Serve:    service.Service[store]{Flags: c.flags, Open: service.Stores(openBolt, openPostgres), Build: c.build},
		Commands: map[string]service.Func{"store": pgdb.CopyCommand("workitems", boltdb.OpenExisting, pgstore.Open, copyStore), "migrate": pgdb.MigrateCommand("workitems", "WORKITEMS", pgstore.Schema)},
		Name:     "workitems", Version: version, Prefix: "WORKITEMS", DefaultAddr: "127.0.0.1:8081",
	}
}

func (c *config) flags(fs *envflag.Set) {
	fs.StringVar(&c.issuer, "issuer", "WORKITEMS_ISSUER", "http://127.0.0.1:8080", "the IdP's issuer: tokens' iss must equal it")
	fs.StringVar(&c.jwksURL, "jwks-url", "WORKITEMS_JWKS_URL", "", "JWKS URL (default: jwks_uri of the issuer's discovery document)")
	fs.StringVar(&c.audience, "audience", "WORKITEMS_AUDIENCE", "workitems", "tokens' aud must contain it")
	fs.DurationVar(&c.leeway, "leeway", "WORKITEMS_LEEWAY", 30*time.Second, "clock skew allowed on exp, nbf and iat")
	fs.DurationVar(&c.jwksRefresh, "jwks-refresh", "WORKITEMS_JWKS_REFRESH", 5*time.Minute, "scheduled JWKS refresh interval")
	fs.StringVar(&c.resource, "resource", "WORKITEMS_RESOURCE", "", "the resource identifier its protected-resource metadata names (default: its URL as requested)")
	fs.StringVar(&c.adminToken, "admin-token", "WORKITEMS_ADMIN_TOKEN", "", "admin credential for /admin/backup (404 until set)")
	fs.Secret("admin-token")
	fs.Check(func() error {
		_, err := service.HTTPURL(c.issuer)
		return err
	}, "issuer")
	fs.Check(func() error {
		if c.jwksURL == "" {
			return nil // from the issuer's discovery document
		}
		_, err := service.HTTPURL(c.jwksURL)
		return err
	}, "jwks-url")
	fs.Check(func() error {
		if c.resource == "" {
			return nil // its URL as a request reaches it
		}
		u, err := service.HTTPURL(c.resource)
		if err == nil && (u.Fragment != "" || u.RawQuery != "") {
			err = errors.New("must have no query or fragment (RFC 9728 §1.2)")
		}
		return err
	}, "resource")
	fs.Require(func() bool { return c.audience != "" }, "not be empty", "audience")
	fs.Require(func() bool { return c.leeway >= 0 && c.leeway <= 10*time.Minute }, "be between 0 and 10m", "leeway")
	fs.Require(func() bool { return c.jwksRefresh >= 10*time.Millisecond }, "be at least 10ms", "jwks-refresh")
}

// build wires the service on its open store: it trusts the issuer's tokens through its JWKS and
// is ready once the keys are loaded.
func (c *config) build(ctx context.Context, r *service.Running[store]) (service.App, error) {
	keys := jwtauth.NewRemoteKeys(ctx, jwtauth.RemoteConfig{
		Issuer: c.issuer, JWKSURL: c.jwksURL, RefreshInterval: c.jwksRefresh,
		Logger: r.Logger.With("component", "jwks"),
	})
	r.Ready.Add(keys.Ready)
	verifier := jwtauth.NewVerifier(jwtauth.Config{Issuer: c.issuer, Audience: c.audience, Leeway: c.leeway, Keys: keys, CacheSize: 10000, Now: r.Clock.Now})
	handler := httpapi.NewServer(httpapi.Deps{
		Logger: r.Logger, Registry: r.Registry, Items: r.Store, Verifier: verifier, Ready: r.Ready, Now: r.Clock.Now,
		AdminToken: c.adminToken, Store: web.SnapshotterOf(r.Store), RemoteAddrs: r.Settings.Clients,
		Issuer: c.issuer, Resource: c.resource,
	})
	where := []any{"data", r.Settings.Data}
	if r.Settings.Replicated() {
		where = []any{"store", "postgres"}
	}
	return service.App{Handler: handler, Log: append([]any{"issuer", c.issuer}, where...)}, nil
}

// store is where work items are kept: bbolt in --data, or PostgreSQL (--database-url) for
// replicas.
type store interface {
	service.Store
	workitem.Store
}

func openBolt(dir string, lockTimeout time.Duration) (store, error) {
	return boltdb.Open(dir, lockTimeout)
}

func openPostgres(ctx context.Context, cfg pgdb.Config, logger *slog.Logger) (store, error) {
	return pgstore.Open(ctx, cfg, logger)
}
