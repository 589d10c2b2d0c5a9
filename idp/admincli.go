package main

import (
	"errors"

	"jwtidp/shared/envflag"
)

// adminFlags are the flags every admin subcommand (idp keys, users, clients, audit) takes: where
// the IdP is, and an admin credential — the static admin token the IdP was started with, or an
// access token with the idp:admin scope (POST /auth with "scope":"idp:admin" by a user flagged
// admin), so no shared secret is needed day to day.
type adminFlags struct {
	base, adminToken, token *string
}

func addAdminFlags(fs *envflag.Set) adminFlags {
	return adminFlags{
		base:       fs.String("url", "IDP_URL", "http://127.0.0.1:8080", "the running IdP"),
		adminToken: fs.String("admin-token", "IDP_ADMIN_TOKEN", "", "the static admin credential the IdP was started with"),
		token:      fs.String("token", "IDP_TOKEN", "", "an access token with the idp:admin scope, instead of the admin token"),
	}
}

// credential is the credential given: an access token (--token, IDP_TOKEN) when there is one —
// so it works where IDP_ADMIN_TOKEN is set in the environment too — else the admin token.
func (a adminFlags) credential() (string, error) {
	switch {
	case *a.token != "":
		return *a.token, nil
	case *a.adminToken != "":
		return *a.adminToken, nil
	}
	return "", errors.New("no admin token: pass --admin-token (IDP_ADMIN_TOKEN), or an idp:admin access token with --token (IDP_TOKEN)")
}

// adminFlagNames are the names isKeysFlag knows as this command's flags, not a positional value.
var adminFlagNames = []string{"url", "admin-token", "token"}
