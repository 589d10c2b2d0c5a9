// Package e2e tests the deployment configurations in deploy/ against real servers: nginx from
// Debian's packages (and Caddy, and oauth2-proxy as an OpenID Connect client) in front of the
// real IdP binary and an app, and a real headless Chromium that logs in through them. Without
// those tools the tests skip, unless
// JWTIDP_REQUIRE_INTEGRATION is set (as in CI), where a missing tool is a failure.
package e2e
