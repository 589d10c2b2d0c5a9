package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"jwtidp/shared/envflag"
	"jwtidp/shared/jwtauth"
	"jwtidp/shared/web"
	"jwtidp/workitems/boltdb"
	"jwtidp/workitems/httpapi"
)

type config struct {
	addr, issuer, jwksURL, audience, data, logLevel, adminToken, pprofAddr string
	leeway, jwksRefresh, readHeader                                        time.Duration
	version                                                                bool
}

func parseServe(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := envflag.New("workitems serve", stderr)
	addr := fs.String("addr", "WORKITEMS_ADDR", defaultAddr, "listen address")
	issuer := fs.String("issuer", "WORKITEMS_ISSUER", "http://127.0.0.1:8080", "the IdP's issuer: tokens' iss must equal it")
	jwksURL := fs.String("jwks-url", "WORKITEMS_JWKS_URL", "", "JWKS URL (default: jwks_uri of the issuer's discovery document)")
	audience := fs.String("audience", "WORKITEMS_AUDIENCE", "workitems", "tokens' aud must contain it")
	leeway := fs.Duration("leeway", "WORKITEMS_LEEWAY", 30*time.Second, "clock skew allowed on exp, nbf and iat")
	data := fs.String("data", "WORKITEMS_DATA", "./data/workitems", "data folder (the bbolt file lives inside)")
	refresh := fs.Duration("jwks-refresh", "WORKITEMS_JWKS_REFRESH", 5*time.Minute, "scheduled JWKS refresh interval")
	adminToken := fs.String("admin-token", "WORKITEMS_ADMIN_TOKEN", "", "admin credential for /admin/backup (404 until set)")
	readHeader := fs.Duration("read-header-timeout", "WORKITEMS_READ_HEADER_TIMEOUT", 5*time.Second, "time a client has to send its request headers (slow clients are cut off)")
	pprofAddr := fs.String("pprof-addr", "WORKITEMS_PPROF_ADDR", "", "serve Go profiling (pprof) on this address; off when empty")
	logLevel := fs.String("log-level", "WORKITEMS_LOG_LEVEL", "info", "debug, info, warn or error")
	ver := fs.Bool("version", "", false, "print the version and exit")
	if err := fs.Parse(args, getenv); err != nil {
		return config{}, err
	}
	c := config{addr: *addr, issuer: *issuer, jwksURL: *jwksURL, audience: *audience, data: *data,
		logLevel: *logLevel, leeway: *leeway, adminToken: *adminToken, readHeader: *readHeader, pprofAddr: *pprofAddr, jwksRefresh: *refresh, version: *ver}
	if c.version {
		return c, nil
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return c, fmt.Errorf("invalid --addr (WORKITEMS_ADDR) %q: %v", c.addr, err)
	}
	if err := httpURL(c.issuer); err != nil {
		return c, fmt.Errorf("invalid --issuer (WORKITEMS_ISSUER) %q: %v", c.issuer, err)
	}
	if c.jwksURL != "" {
		if err := httpURL(c.jwksURL); err != nil {
			return c, fmt.Errorf("invalid --jwks-url (WORKITEMS_JWKS_URL) %q: %v", c.jwksURL, err)
		}
	}
	if c.audience == "" {
		return c, errors.New("invalid --audience (WORKITEMS_AUDIENCE): must not be empty")
	}
	if c.leeway < 0 || c.leeway > 10*time.Minute {
		return c, fmt.Errorf("invalid --leeway (WORKITEMS_LEEWAY) %s: must be between 0 and 10m", c.leeway)
	}
	if c.jwksRefresh < 10*time.Millisecond {
		return c, fmt.Errorf("invalid --jwks-refresh (WORKITEMS_JWKS_REFRESH) %s: too short", c.jwksRefresh)
	}
	if c.readHeader < 100*time.Millisecond {
		return c, fmt.Errorf("invalid --read-header-timeout (WORKITEMS_READ_HEADER_TIMEOUT) %s: at least 100ms", c.readHeader)
	}
	if c.data == "" {
		return c, errors.New("invalid --data (WORKITEMS_DATA): must name a folder")
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.logLevel)); err != nil {
		return c, fmt.Errorf("invalid --log-level (WORKITEMS_LOG_LEVEL) %q: %v", c.logLevel, err)
	}
	return c, nil
}

func httpURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http or https URL")
	}
	return nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	if c.version {
		fmt.Fprintln(stdout, "workitems", version)
		return nil
	}
	var level slog.Level
	level.UnmarshalText([]byte(c.logLevel))
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

	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	if c.pprofAddr != "" {
		if err := web.ServePprof(bg, c.pprofAddr, logger); err != nil {
			return err
		}
	}
	keys := jwtauth.NewRemoteKeys(bg, jwtauth.RemoteConfig{
		Issuer: c.issuer, JWKSURL: c.jwksURL, RefreshInterval: c.jwksRefresh,
		Logger: logger.With("component", "jwks"),
	})
	verifier := jwtauth.NewVerifier(jwtauth.Config{Issuer: c.issuer, Audience: c.audience, Leeway: c.leeway, Keys: keys, CacheSize: 10000})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ready := web.NewReadiness(db.Ping, keys.Ready)
	handler := httpapi.NewServer(httpapi.Deps{
		Logger: logger, Registry: reg, Items: db, Verifier: verifier, Ready: ready, Now: time.Now,
		AdminToken: c.adminToken, Store: db,
	})
	logger.Info("listening", "addr", ln.Addr().String(), "issuer", c.issuer, "data", c.data)
	err = web.Serve(ctx, web.NewServer(handler, logger, c.readHeader), ln, ready, 10*time.Second, logger)
	stopBG()
	logger.Info("stopped")
	return err
}
