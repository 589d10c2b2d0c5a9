// Package e2e tests the deployment configurations in deploy/ against real servers: nginx from
// Debian's packages in front of the real IdP binary and an app, and a real headless Chromium
// that logs in through them. Without nginx or Chromium the tests skip, unless
// JWTIDP_REQUIRE_INTEGRATION is set (as in CI), where a missing tool is a failure.
package e2e
