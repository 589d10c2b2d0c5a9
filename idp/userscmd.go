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

// usersCommand is one `idp users` subcommand: the admin route it calls for the user its USER
// argument resolves to (their id), the further arguments it takes and the body they make, and
// how it prints the route's result.
type usersCommand struct {
	method string
	path   func(id string) string // under /admin/users
	args   []string               // names of the arguments after USER
	body   func(args []string) any
	print  func(w io.Writer, result json.RawMessage) error
}

// usersCommands are the subcommands of `idp users` that act on one user, one entry each.
var usersCommands = map[string]usersCommand{
	"verify-email": {
		method: http.MethodPost,
		path:   func(id string) string { return "/" + url.PathEscape(id) + "/verify-email" },
		args:   []string{"ADDRESS"},
		body:   func(args []string) any { return httpapi.VerifyEmailRequest{Email: args[0]} },
		print: func(w io.Writer, result json.RawMessage) error {
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
		path:   func(id string) string { return "/" + url.PathEscape(id) },
		print: func(w io.Writer, result json.RawMessage) error {
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
	"delete":       userAction(http.MethodDelete, "", "deleted, with their sessions and refresh tokens; the username and email stay reserved until idp users release-name"),
	"grant-admin":  userAction(http.MethodPost, "/grant-admin", "is an administrator: they may be granted the idp:admin scope"),
	"revoke-admin": userAction(http.MethodPost, "/revoke-admin", "is no longer an administrator"),
	"reset-mfa": {
		method: http.MethodPost,
		path:   func(id string) string { return "/" + url.PathEscape(id) + "/reset-mfa" },
		print: func(w io.Writer, result json.RawMessage) error {
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
		path:   func(id string) string { return "/" + url.PathEscape(id) + suffix },
		print: func(w io.Writer, result json.RawMessage) error {
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
	for n, c := range usersCommands {
		if len(c.args) == 0 {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	flags := "   [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]"
	return "usage: idp users " + strings.Join(names, "|") + " USER [--sub]" + flags + "\n" +
		"       idp users verify-email USER ADDRESS [--sub]" + flags + "\n" +
		"       idp users release-name USERNAME" + flags + "\n" +
		"       idp users reset-password USER [--print-link] [--sub]" + flags + "\n" +
		"       idp users invite EMAIL [--group G[,G…]] [--print-link]" + flags + "\n" +
		"       idp users list [--prefix P] [--after NAME] [--limit N]" + flags + "\n" +
		"USER is a username (any letter case) or a user's sub; one that is both someone's username and\n" +
		"someone else's sub is refused (--sub: USER is a sub only). release-name frees a deleted user's\n" +
		"username and email."
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
	switch sub {
	case "list":
		return usersList(ctx, rest, getenv, stdout, stderr)
	case "release-name":
		return usersReleaseName(ctx, rest, getenv, stdout, stderr)
	case "reset-password":
		return usersResetPassword(ctx, rest, getenv, stdout, stderr)
	case "invite":
		return usersInvite(ctx, rest, getenv, stdout, stderr)
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
	var extra []string
	for _, name := range cmd.args {
		if len(rest) == 0 || isKeysFlag(rest[0]) {
			return fmt.Errorf("idp users %s needs %s after the user\n%s", sub, name, usersUsage())
		}
		extra, rest = append(extra, rest[0]), rest[1:]
	}
	fs := envflag.New("idp users "+sub, stderr)
	admin := addAdminFlags(fs)
	base := admin.base
	onlySub := fs.Bool("sub", "", false, "USER is a sub: do not look it up as a username too")
	if err := fs.Parse(rest, getenv); err != nil {
		return err
	}
	token, err := admin.credential()
	if err != nil {
		return err
	}
	id, err := resolveUser(ctx, *base, token, user, *onlySub)
	if err != nil {
		return err
	}
	var body []byte
	if cmd.body != nil {
		if body, err = json.Marshal(cmd.body(extra)); err != nil {
			return err
		}
	}
	result, err := adminCall(ctx, *base, token, cmd.method, "/admin/users"+cmd.path(id), body, http.StatusOK)
	if err != nil {
		return err
	}
	if err := cmd.print(stdout, result); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", *base, err)
	}
	return nil
}

// resolveUser is the id of the user arg names (onlySub: as a sub only): the admin routes take only ids, and a username
// is anyone's pick at signup, so it may be someone else's sub. arg is looked up both as a
// username and as a sub; one match is that user, a username of one user that is the sub of
// another is refused (acting on either would be a guess), and no match is no such user.
func resolveUser(ctx context.Context, base, token, arg string, onlySub bool) (string, error) {
	if onlySub {
		result, err := adminCall(ctx, base, token, http.MethodGet, "/admin/users/"+url.PathEscape(arg), nil, http.StatusOK)
		if err != nil {
			return "", err
		}
		var u httpapi.AdminUserInfo
		if err := json.Unmarshal(result, &u); err != nil {
			return "", fmt.Errorf("unexpected answer from %s: %v", base, err)
		}
		return u.ID, nil
	}
	q := url.Values{"username": {arg}}
	result, err := adminCall(ctx, base, token, http.MethodGet, "/admin/users?"+q.Encode(), nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	var page httpapi.AdminUserPage
	if err := json.Unmarshal(result, &page); err != nil {
		return "", fmt.Errorf("unexpected answer from %s: %v", base, err)
	}
	status, result, msg, err := adminRequest(ctx, base, token, http.MethodGet, "/admin/users/"+url.PathEscape(arg), nil)
	if err != nil {
		return "", err
	}
	var byID *httpapi.AdminUserInfo
	switch {
	case status == http.StatusOK:
		byID = new(httpapi.AdminUserInfo)
		if err := json.Unmarshal(result, byID); err != nil {
			return "", fmt.Errorf("unexpected answer from %s: %v", base, err)
		}
	case status == http.StatusNotFound && msg != "" && msg != "Not found":
		// No user has that id.
	default:
		return "", adminRefusal(base, status, msg)
	}
	switch {
	case len(page.Users) == 1 && byID != nil && page.Users[0].ID != byID.ID:
		return "", fmt.Errorf("%q is both the username of one user (sub %s) and the sub of another (username %s); refusing to guess: "+
			"name the first by its sub %s, or the second by this sub with --sub", arg, page.Users[0].ID, byID.Username, page.Users[0].ID)
	case len(page.Users) == 1:
		return page.Users[0].ID, nil
	case byID != nil:
		return byID.ID, nil
	}
	return "", fmt.Errorf("no such user %q: it is neither a username nor a sub", arg)
}

// userArgs starts a users command that names one thing first (need says what, when it is
// missing): that argument, the admin flags and the command's own (addFlags, when set) parsed from
// the rest, and the admin's credential.
func userArgs(name, need string, args []string, getenv func(string) string, stderr io.Writer, addFlags func(*envflag.Set)) (string, adminFlags, string, error) {
	if len(args) == 0 || isKeysFlag(args[0]) {
		return "", adminFlags{}, "", fmt.Errorf("idp users %s needs %s\n%s", name, need, usersUsage())
	}
	fs := envflag.New("idp users "+name, stderr)
	admin := addAdminFlags(fs)
	if addFlags != nil {
		addFlags(fs)
	}
	if err := fs.Parse(args[1:], getenv); err != nil {
		return "", adminFlags{}, "", err
	}
	token, err := admin.credential()
	return args[0], admin, token, err
}

// usersReleaseName is `idp users release-name USERNAME`: a deleted user's username and email,
// reserved since the delete, are free for someone new.
func usersReleaseName(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, admin, token, err := userArgs("release-name", "the deleted user's username", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	if _, err := adminCall(ctx, *admin.base, token, http.MethodPost, "/admin/usernames/"+url.PathEscape(name)+"/release", nil, http.StatusNoContent); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "username %s released: it and the email reserved with it are free for a new signup\n", name)
	return err
}

// usersResetPassword is `idp users reset-password USER [--print-link]`: a password reset link
// mailed to the user's verified address, or printed (for deployments without mail) for the
// admin to hand over; it works once, for 30 minutes.
func usersResetPassword(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var onlySub, printLink *bool
	user, admin, token, err := userArgs("reset-password", "a username or sub", args, getenv, stderr, func(fs *envflag.Set) {
		onlySub = fs.Bool("sub", "", false, "USER is a sub: do not look it up as a username too")
		printLink = fs.Bool("print-link", "", false, "print the link instead of mailing it")
	})
	if err != nil {
		return err
	}
	base := admin.base
	id, err := resolveUser(ctx, *base, token, user, *onlySub)
	if err != nil {
		return err
	}
	path, status := "/admin/users/"+url.PathEscape(id)+"/reset-password", http.StatusAccepted
	if *printLink {
		path, status = path+"?print=1", http.StatusOK
	}
	result, err := adminCall(ctx, *base, token, http.MethodPost, path, nil, status)
	if err != nil {
		return err
	}
	if !*printLink {
		_, err = fmt.Fprintf(stdout, "a password reset link was mailed to %s's verified address; it works once, for 30 minutes\n", user)
		return err
	}
	var v struct {
		Link string `json:"link"`
	}
	if err := json.Unmarshal(result, &v); err != nil || v.Link == "" {
		return fmt.Errorf("unexpected answer from %s: %v", *base, err)
	}
	_, err = fmt.Fprintf(stdout, "%s\n(it works once, for 30 minutes: hand it to the user over a channel you trust)\n", v.Link)
	return err
}

// usersInvite is `idp users invite EMAIL [--group G] [--print-link]`: an invitation to sign up,
// mailed to EMAIL or printed; its account gets that address, verified, and the groups.
func usersInvite(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var groups *string
	var printLink *bool
	email, admin, token, err := userArgs("invite", "an email address", args, getenv, stderr, func(fs *envflag.Set) {
		groups = fs.String("group", "", "", "groups the new user joins (comma-separated)")
		printLink = fs.Bool("print-link", "", false, "print the link instead of mailing it")
	})
	if err != nil {
		return err
	}
	base := admin.base
	gs := splitList(*groups)
	if gs == nil {
		gs = []string{}
	}
	body, err := json.Marshal(httpapi.InvitationRequest{Email: email, Groups: gs})
	if err != nil {
		return err
	}
	path := "/admin/invitations"
	if *printLink {
		path += "?print=1"
	}
	result, err := adminCall(ctx, *base, token, http.MethodPost, path, body, http.StatusCreated)
	if err != nil {
		return err
	}
	var inv httpapi.InvitationInfo
	if err := json.Unmarshal(result, &inv); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", *base, err)
	}
	if *printLink {
		_, err = fmt.Fprintf(stdout, "%s\n(invitation %s for %s; it works once, until %s)\n", inv.Link, inv.ID, inv.Email, inv.ExpiresAt.Format(time.RFC3339))
		return err
	}
	_, err = fmt.Fprintf(stdout, "invitation %s mailed to %s; it works once, until %s\n", inv.ID, inv.Email, inv.ExpiresAt.Format(time.RFC3339))
	return err
}
