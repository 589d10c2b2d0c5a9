package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"jwtidp/idp/httpapi"
	"jwtidp/shared/envflag"
)

// keysCmd runs `idp keys list|rotate`: it calls the admin routes of a running IdP.
func keysCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "rotate") {
		return errors.New("usage: idp keys list|rotate [--url URL] [--admin-token TOKEN]")
	}
	sub := args[0]
	fs := envflag.New("idp keys "+sub, stderr)
	base := fs.String("url", "IDP_URL", "http://127.0.0.1:8080", "the running IdP")
	token := fs.String("admin-token", "IDP_ADMIN_TOKEN", "", "admin credential the IdP was started with")
	if err := fs.Parse(args[1:], getenv); err != nil {
		return err
	}
	if *token == "" {
		return errors.New("no admin token: pass --admin-token or set IDP_ADMIN_TOKEN")
	}
	method, path := http.MethodGet, "/admin/keys"
	if sub == "rotate" {
		method, path = http.MethodPost, "/admin/keys/rotate"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	url := strings.TrimSuffix(*base, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return fmt.Errorf("invalid --url %q: %v", *base, err)
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the IdP at %s: %v", *base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fmt.Errorf("the IdP at %s refused the admin token (check --admin-token or IDP_ADMIN_TOKEN)", *base)
	case http.StatusNotFound:
		return fmt.Errorf("the IdP at %s has no admin routes: start it with --admin-token (IDP_ADMIN_TOKEN)", *base)
	default:
		return fmt.Errorf("the IdP at %s answered %s", *base, resp.Status)
	}
	var env struct {
		Result []httpapi.KeyInfo `json:"result"` // the admin route's own type: they cannot drift
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", url, err)
	}
	if sub == "rotate" {
		fmt.Fprintln(stdout, "rotated; keys now:")
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tSTATE\tCREATED\tSIGNS FROM\tRETIRES\tDELETED")
	for _, k := range env.Result {
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
