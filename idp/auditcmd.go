package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"jwtidp/idp/httpapi"
	"jwtidp/shared/envflag"
)

const auditUsage = "usage: idp audit [--user USER] [--type TYPE] [--since TIME|DURATION] [--before ID] [--limit N]   [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]"

// auditCmd is `idp audit`: the audit trail of a running IdP, newest first, one event a line.
func auditCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := envflag.New("idp audit", stderr)
	admin := addAdminFlags(fs)
	user := fs.String("user", "", "", "only this user's events (a username or a sub)")
	typ := fs.String("type", "", "", "only events of this type (login, lockout, user_disabled, key_rotated, …)")
	since := fs.String("since", "", "", "only events since then: a time (RFC 3339) or a duration back from now (24h)")
	before := fs.Int("before", "", 0, "only events older than this event id (the previous page's next)")
	limit := fs.Int("limit", "", 100, "events per page (1 to 1000)")
	if err := fs.Parse(args, getenv); err != nil {
		return fmt.Errorf("%v\n%s", err, auditUsage)
	}
	token, err := admin.credential()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	for k, v := range map[string]string{"user": *user, "type": *typ, "since": *since} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *before > 0 {
		q.Set("before", strconv.Itoa(*before))
	}
	result, err := adminCall(ctx, *admin.base, token, http.MethodGet, "/admin/audit?"+q.Encode(), nil, http.StatusOK)
	if err != nil {
		return err
	}
	var page httpapi.AuditPage
	if err := json.Unmarshal(result, &page); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", *admin.base, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tTYPE\tOUTCOME\tUSER\tACTOR\tCLIENT\tDETAIL")
	for _, e := range page.Events {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Format(time.RFC3339), e.Type, e.Outcome,
			dash(e.User), e.Actor, dash(e.ClientIP), e.Detail)
	}
	tw.Flush()
	if page.Next != 0 {
		fmt.Fprintf(stdout, "next page: --before %d\n", page.Next)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
