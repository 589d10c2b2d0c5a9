package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"jwtidp/idp/httpapi"
	"jwtidp/shared/envflag"
)

const groupsUsage = "usage: idp groups add|remove NAME\n" +
	"       idp groups list [--prefix P] [--after NAME] [--limit N]\n" +
	"       idp groups add-member|remove-member NAME USER [--sub]\n" +
	"   [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]\n" +
	"NAME is 1 to 64 of [a-z0-9._:-]; USER is a username (any letter case) or a user's sub, as for idp users."

// groupsCmd is `idp groups …`: the groups of a running IdP and their members, through its
// admin routes.
func groupsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(groupsUsage)
	}
	sub, rest := args[0], args[1:]
	// The positional arguments each subcommand takes before its flags.
	var names []string
	switch sub {
	case "list":
	case "add", "remove":
		names = []string{"NAME"}
	case "add-member", "remove-member":
		names = []string{"NAME", "USER"}
	default:
		return errors.New(groupsUsage)
	}
	var pos []string
	for _, n := range names {
		if len(rest) == 0 || isKeysFlag(rest[0]) {
			return fmt.Errorf("idp groups %s needs %s\n%s", sub, n, groupsUsage)
		}
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	fs := envflag.New("idp groups "+sub, stderr)
	admin := addAdminFlags(fs)
	var prefix, after *string
	var limit *int
	var onlySub *bool
	switch sub {
	case "list":
		prefix = fs.String("prefix", "", "", "only groups whose names start with it")
		after = fs.String("after", "", "", "only groups after it (the previous page's next)")
		limit = fs.Int("limit", "", 100, "groups per page (1 to 1000)")
	case "add-member", "remove-member":
		onlySub = fs.Bool("sub", "", false, "USER is a sub: do not look it up as a username too")
	}
	if err := fs.Parse(rest, getenv); err != nil {
		return err
	}
	base := *admin.base
	token, err := admin.credential()
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		q := url.Values{"prefix": {*prefix}, "after": {*after}, "limit": {strconv.Itoa(*limit)}}
		result, err := adminCall(ctx, base, token, http.MethodGet, "/admin/groups?"+q.Encode(), nil, http.StatusOK)
		if err != nil {
			return err
		}
		var page httpapi.GroupPage
		if err := json.Unmarshal(result, &page); err != nil {
			return fmt.Errorf("unexpected answer from %s: %v", base, err)
		}
		for _, g := range page.Groups {
			fmt.Fprintf(stdout, "%s\t%s\n", g.Name, g.CreatedAt.Format(time.RFC3339))
		}
		if page.Next != "" {
			fmt.Fprintf(stdout, "next page: --after %s\n", page.Next)
		}
		return nil
	case "add":
		body, _ := json.Marshal(map[string]string{"name": pos[0]})
		if _, err := adminCall(ctx, base, token, http.MethodPost, "/admin/groups", body, http.StatusCreated); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "group %s added\n", pos[0])
		return err
	case "remove":
		if _, err := adminCall(ctx, base, token, http.MethodDelete, "/admin/groups/"+url.PathEscape(pos[0]), nil, http.StatusNoContent); err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "group %s removed, with its memberships\n", pos[0])
		return err
	}
	id, err := resolveUser(ctx, base, token, pos[1], *onlySub)
	if err != nil {
		return err
	}
	method, what := http.MethodPut, "is now a member of"
	if sub == "remove-member" {
		method, what = http.MethodDelete, "is no longer a member of"
	}
	path := "/admin/groups/" + url.PathEscape(pos[0]) + "/members/" + url.PathEscape(id)
	if _, err := adminCall(ctx, base, token, method, path, nil, http.StatusNoContent); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s (sub %s) %s %s\n", pos[1], id, what, pos[0])
	return err
}
