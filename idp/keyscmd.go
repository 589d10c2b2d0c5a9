package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"jwtidp/idp/httpapi"
	"jwtidp/shared/envflag"
)

const keysUsage = "usage: idp keys list|rotate|revoke KID [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]"

func isKeysFlag(arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return strings.HasPrefix(arg, "-") && (slices.Contains(adminFlagNames, name) || name == "h" || name == "help")
}

// keysCmd runs `idp keys list|rotate|revoke KID`: it calls the admin routes of a running IdP.
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate" && args[0] != "revoke") {
		return errors.New(keysUsage)
	}
	sub, rest := args[0], args[1:]
	var kid string
	if sub == "revoke" {
		// A kid is base64url and may well start with "-": only a flag of this command is not one.
		if len(rest) == 0 || isKeysFlag(rest[0]) {
			return errors.New("idp keys revoke needs the kid of the key to revoke (see idp keys list)\n" + keysUsage)
		}
		kid, rest = rest[0], rest[1:]
	}
	fs := envflag.New("idp keys "+sub, stderr)
	admin := addAdminFlags(fs)
	base := admin.base
	if err := fs.Parse(rest, getenv); err != nil {
		return err
	}
	token, err := admin.credential()
	if err != nil {
		return err
	}
	method, path := http.MethodGet, "/admin/keys"
	switch sub {
	case "rotate":
		method, path = http.MethodPost, "/admin/keys/rotate"
	case "revoke":
		method, path = http.MethodPost, "/admin/keys/"+url.PathEscape(kid)+"/revoke"
	}
	result, err := adminCall(ctx, *base, token, method, path, nil, http.StatusOK)
	if err != nil {
		if sub == "revoke" && strings.Contains(err.Error(), "refused: ") {
			// The revoke route answers 404 with its own message for an unknown kid.
			return fmt.Errorf("the IdP at %s has no signing key %q (see idp keys list)", *base, kid)
		}
		return err
	}
	var keys []httpapi.KeyInfo // the admin route's own type: they cannot drift
	if err := json.Unmarshal(result, &keys); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", *base, err)
	}
	switch sub {
	case "rotate":
		fmt.Fprintln(stdout, "rotated; keys now:")
	case "revoke":
		fmt.Fprintf(stdout, "revoked %s: it has left the JWKS; verifiers drop it at their next JWKS refresh. Keys now:\n", kid)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tSTATE\tCREATED\tSIGNS FROM\tRETIRES\tDELETED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.State, stamp(&k.CreatedAt), stamp(k.SignsFrom), stamp(k.RetiresAt), stamp(k.DeleteAt))
	}
	return tw.Flush()
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
