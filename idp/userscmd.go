package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"jwtidp/idp/httpapi"
	"jwtidp/shared/envflag"
)

// usersCommand is one `idp users` subcommand: the admin route it calls for its USER argument
// (a username or a sub), and how it prints the route's result.
type usersCommand struct {
	method string
	path   func(user string) string // under /admin/users
	print  func(w io.Writer, user string, result json.RawMessage) error
}

// usersCommands are the subcommands of `idp users`, one entry each.
var usersCommands = map[string]usersCommand{
	"verify-email": {
		method: http.MethodPost,
		path:   func(user string) string { return "/" + url.PathEscape(user) + "/verify-email" },
		print: func(w io.Writer, _ string, result json.RawMessage) error {
			var v httpapi.VerifiedEmail // the admin route's own type: they cannot drift
			if err := json.Unmarshal(result, &v); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "verified %s for %s (sub %s)\n", v.Email, v.Username, v.Sub)
			return err
		},
	},
	"show": {
		method: http.MethodGet,
		path:   func(user string) string { return "/" + url.PathEscape(user) },
		print: func(w io.Writer, _ string, result json.RawMessage) error {
			var u httpapi.AdminUserInfo
			if err := json.Unmarshal(result, &u); err != nil {
				return err
			}
			printUser(w, u)
			return nil
		},
	},
	"disable":      userAction(http.MethodPost, "/disable", "disabled: they cannot sign in; their sessions and refresh tokens ended"),
	"enable":       userAction(http.MethodPost, "/enable", "enabled: they can sign in again"),
	"logout":       userAction(http.MethodPost, "/logout", "signed out everywhere: their sessions and refresh tokens ended"),
	"delete":       userAction(http.MethodDelete, "", "deleted, with their sessions and refresh tokens; the username is free again"),
	"grant-admin":  userAction(http.MethodPost, "/grant-admin", "is an administrator: they may be granted the idp:admin scope"),
	"revoke-admin": userAction(http.MethodPost, "/revoke-admin", "is no longer an administrator"),
	"reset-mfa": {
		method: http.MethodPost,
		path:   func(user string) string { return "/" + url.PathEscape(user) + "/reset-mfa" },
		print: func(w io.Writer, _ string, result json.RawMessage) error {
			var v httpapi.ResetUser
			if err := json.Unmarshal(result, &v); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "second factors of %s (sub %s) removed; their sessions and refresh tokens ended\n", v.Username, v.Sub)
			return err
		},
	},
}

// userAction is a subcommand that acts on a user through method and /admin/users/USER+suffix,
// and says what became of them.
func userAction(method, suffix, what string) usersCommand {
	return usersCommand{
		method: method,
		path:   func(user string) string { return "/" + url.PathEscape(user) + suffix },
		print: func(w io.Writer, _ string, result json.RawMessage) error {
			var u httpapi.AdminUserInfo
			if err := json.Unmarshal(result, &u); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "%s (sub %s) %s\n", u.Username, u.ID, what)
			return err
		},
	}
}

func usersUsage() string {
	names := make([]string, 0, len(usersCommands))
	for n := range usersCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	return "usage: idp users " + strings.Join(names, "|") + " USER   [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]\n" +
		"       idp users list [--prefix P] [--after NAME] [--limit N]   [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]\n" +
		"USER is a username (any letter case) or a user's sub"
}

// printUser writes one user as `idp users show` and `list` print them: never a secret.
func printUser(w io.Writer, u httpapi.AdminUserInfo) {
	email := u.Email
	switch {
	case email == "":
		email = "-"
	case !u.EmailVerified:
		email += " (unverified)"
	}
	factors := strings.Join(u.SecondFactors, ",")
	if factors == "" {
		factors = "-"
	}
	last := "never"
	if u.LastLoginAt != nil {
		last = u.LastLoginAt.Format(time.RFC3339)
	}
	var flags []string
	if u.Disabled {
		flags = append(flags, "disabled")
	}
	if u.Admin {
		flags = append(flags, "admin")
	}
	if len(flags) == 0 {
		flags = []string{"-"}
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\tlast login %s\t%s\n", u.Username, u.ID, u.CreatedAt.Format(time.RFC3339), email, factors, last, strings.Join(flags, ","))
}

// usersList is `idp users list`: a page of users (username, sub, created, email, second factors).
func usersList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := envflag.New("idp users list", stderr)
	admin := addAdminFlags(fs)
	base := admin.base
	prefix := fs.String("prefix", "", "", "only usernames that start with it")
	after := fs.String("after", "", "", "only usernames after it (the previous page's next)")
	limit := fs.Int("limit", "", 100, "users per page (1 to 1000)")
	if err := fs.Parse(args, getenv); err != nil {
		return err
	}
	token, err := admin.credential()
	if err != nil {
		return err
	}
	q := url.Values{"prefix": {*prefix}, "after": {*after}, "limit": {strconv.Itoa(*limit)}}
	result, err := adminCall(ctx, *base, token, http.MethodGet, "/admin/users?"+q.Encode(), nil, http.StatusOK)
	if err != nil {
		return err
	}
	var page httpapi.AdminUserPage
	if err := json.Unmarshal(result, &page); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", *base, err)
	}
	for _, u := range page.Users {
		printUser(stdout, u)
	}
	if page.Next != "" {
		fmt.Fprintf(stdout, "next page: --after %s\n", page.Next)
	}
	return nil
}

// usersCmd is `idp users …`: the users of a running IdP, through its admin routes.
func usersCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usersUsage())
	}
	sub, rest := args[0], args[1:]
	if sub == "list" {
		return usersList(ctx, rest, getenv, stdout, stderr)
	}
	cmd, ok := usersCommands[sub]
	if !ok {
		return errors.New(usersUsage())
	}
	// A sub is base64url and may start with "-": only a flag of this command is not a user.
	if len(rest) == 0 || isKeysFlag(rest[0]) {
		return fmt.Errorf("idp users %s needs a username or sub\n%s", sub, usersUsage())
	}
	user, rest := rest[0], rest[1:]
	fs := envflag.New("idp users "+sub, stderr)
	admin := addAdminFlags(fs)
	base := admin.base
	if err := fs.Parse(rest, getenv); err != nil {
		return err
	}
	token, err := admin.credential()
	if err != nil {
		return err
	}
	result, err := adminCall(ctx, *base, token, cmd.method, "/admin/users"+cmd.path(user), nil, http.StatusOK)
	if err != nil {
		return err
	}
	if err := cmd.print(stdout, user, result); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", *base, err)
	}
	return nil
}
