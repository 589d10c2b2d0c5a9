package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"jwtidp/idp/httpapi"
	"jwtidp/shared/envflag"
)

const clientsUsage = "usage: idp clients add --id ID [--name NAME] [--public] [--redirect-uri URI]... [--post-logout-redirect-uri URI]... " +
	"--grant-type TYPE... [--scope SCOPE]... [--first-party] [--forward-auth] | list | show ID | remove ID | registration-token [--ttl 24h] [--uses 1]   [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]"

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// clientsCmd runs `idp clients add|list|show|remove`: it calls the client admin routes of a
// running IdP. add prints a confidential client's secret, which is shown this once.
func clientsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(clientsUsage)
	}
	sub, rest := args[0], args[1:]
	var id string
	switch sub {
	case "add", "list", "registration-token":
	case "show", "remove":
		// A client id may start with "-": only a flag of this command is not one.
		if len(rest) == 0 || isKeysFlag(rest[0]) {
			return fmt.Errorf("idp clients %s needs a client id\n%s", sub, clientsUsage)
		}
		id, rest = rest[0], rest[1:]
	default:
		return errors.New(clientsUsage)
	}
	fs := envflag.New("idp clients "+sub, stderr)
	admin := addAdminFlags(fs)
	base := admin.base
	var c httpapi.ClientInfo
	var reg httpapi.RegistrationTokenRequest
	if sub == "registration-token" {
		reg.Uses = 1
		fs.DurationVar(&reg.TTL, "ttl", "", 24*time.Hour, "how long the initial access token is good for")
		fs.IntVar(&reg.Uses, "uses", "", 1, "how many clients it may register")
	}
	if sub == "add" {
		fs.StringVar(&c.ClientID, "id", "", "", "client_id (1–128 of [A-Za-z0-9._-])")
		fs.StringVar(&c.Name, "name", "", "", "display name")
		fs.BoolVar(&c.Public, "public", "", false, "a public client (single-page or native app): no secret, PKCE")
		fs.Var(listFlag{&c.RedirectURIs}, "redirect-uri", "", "redirect URI (repeatable or comma-separated)")
		fs.Var(listFlag{&c.PostLogoutRedirectURIs}, "post-logout-redirect-uri", "", "post-logout redirect URI (repeatable or comma-separated)")
		fs.Var(listFlag{&c.GrantTypes}, "grant-type", "", "authorization_code, refresh_token or client_credentials (repeatable or comma-separated)")
		fs.Var(listFlag{&c.Scopes}, "scope", "", "a scope the client may be granted (repeatable, comma- or space-separated)")
		fs.BoolVar(&c.FirstParty, "first-party", "", false, "its users are not asked for consent")
		fs.BoolVar(&c.ForwardAuth, "forward-auth", "", false, "its users' access tokens pass /verify (forward-auth at the edge), as the IdP's own do")
	}
	if err := fs.Parse(rest, getenv); err != nil {
		return err
	}
	token, err := admin.credential()
	if err != nil {
		return err
	}
	var scopes []string
	for _, s := range c.Scopes {
		scopes = append(scopes, strings.Fields(s)...)
	}
	c.Scopes = scopes
	method, path, status := http.MethodGet, "/admin/clients", http.StatusOK
	var body []byte
	switch sub {
	case "add":
		if c.ClientID == "" || len(c.GrantTypes) == 0 {
			return fmt.Errorf("idp clients add needs --id and --grant-type\n%s", clientsUsage)
		}
		c.CreatedAt = nil
		body, _ = json.Marshal(struct {
			httpapi.ClientInfo
			CreatedAt    *struct{} `json:"created_at,omitempty"`
			ClientSecret *struct{} `json:"client_secret,omitempty"`
		}{ClientInfo: c})
		method, status = http.MethodPost, http.StatusCreated
	case "registration-token":
		body, _ = json.Marshal(reg)
		method, path, status = http.MethodPost, "/admin/registration-tokens", http.StatusCreated
	case "show":
		path += "/" + url.PathEscape(id)
	case "remove":
		method, path, status = http.MethodDelete, path+"/"+url.PathEscape(id), http.StatusNoContent
	}
	result, err := adminCall(ctx, *base, token, method, path, body, status)
	if err != nil {
		return err
	}
	switch sub {
	case "remove":
		fmt.Fprintf(stdout, "removed client %s; its refresh tokens are revoked\n", id)
		return nil
	case "list":
		var list []httpapi.ClientInfo
		if err := json.Unmarshal(result, &list); err != nil {
			return fmt.Errorf("unexpected answer from %s: %v", *base, err)
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tNAME\tTYPE\tGRANT TYPES\tSCOPES\tCREATED\tREGISTERED BY")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ClientID, orDash(c.Name), kind(c), strings.Join(c.GrantTypes, ","),
				orDash(strings.Join(c.Scopes, " ")), stamp(c.CreatedAt), registrant(c.RegisteredBy))
		}
		return tw.Flush()
	case "registration-token":
		var got httpapi.RegistrationTokenInfo
		if err := json.Unmarshal(result, &got); err != nil {
			return fmt.Errorf("unexpected answer from %s: %v", *base, err)
		}
		fmt.Fprintf(stdout, "initial access token: %s\nid: %s\nexpires: %s\nuses: %d\n"+
			"This token is shown only now; the IdP keeps only its hash. A client registers with it at POST /register (Authorization: Bearer).\n",
			got.Token, got.ID, got.ExpiresAt.Format(time.RFC3339), got.Uses)
		return nil
	}
	var got httpapi.ClientInfo
	if err := json.Unmarshal(result, &got); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", *base, err)
	}
	printClient(stdout, got)
	if got.ClientSecret != "" {
		fmt.Fprintf(stdout, "\nclient_secret: %s\nThis secret is shown only now; the IdP keeps only its hash.\n", got.ClientSecret)
	}
	return nil
}

// registrant is who registered a client, for the list: an admin (or a file), or RFC 7591's
// registration with an initial access token (by its id) or open.
func registrant(by string) string {
	if by == "" {
		return "admin"
	}
	return by
}

func kind(c httpapi.ClientInfo) string {
	if c.Public {
		return "public"
	}
	return "confidential"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printClient(w io.Writer, c httpapi.ClientInfo) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id:\t%s\n", c.ClientID)
	fmt.Fprintf(tw, "name:\t%s\n", orDash(c.Name))
	fmt.Fprintf(tw, "type:\t%s\n", kind(c))
	fmt.Fprintf(tw, "first party:\t%v\n", c.FirstParty)
	fmt.Fprintf(tw, "forward auth:\t%v\n", c.ForwardAuth)
	fmt.Fprintf(tw, "grant types:\t%s\n", orDash(strings.Join(c.GrantTypes, " ")))
	fmt.Fprintf(tw, "scopes:\t%s\n", orDash(strings.Join(c.Scopes, " ")))
	fmt.Fprintf(tw, "redirect URIs:\t%s\n", orDash(strings.Join(c.RedirectURIs, " ")))
	fmt.Fprintf(tw, "post-logout redirect URIs:\t%s\n", orDash(strings.Join(c.PostLogoutRedirectURIs, " ")))
	fmt.Fprintf(tw, "created:\t%s\n", stamp(c.CreatedAt))
	fmt.Fprintf(tw, "registered by:\t%s\n", registrant(c.RegisteredBy))
	tw.Flush()
}

// adminCall makes one admin request and returns the envelope's result, or an error that says
// what the operator should do.
func adminCall(ctx context.Context, base, token, method, path string, body []byte, want int) (json.RawMessage, error) {
	status, result, msg, err := adminRequest(ctx, base, token, method, path, body)
	if err != nil {
		return nil, err
	}
	if status == want {
		return result, nil
	}
	return nil, adminRefusal(base, status, msg)
}

// adminRequest makes the admin request and returns the status, the envelope's result and, when
// that is a string, the message.
func adminRequest(ctx context.Context, base, token, method, path string, body []byte) (int, json.RawMessage, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", fmt.Errorf("invalid --url %q: %v", base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", fmt.Errorf("cannot reach the IdP at %s: %v", base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var env struct {
		Status string          `json:"Status"`
		Result json.RawMessage `json:"result"`
	}
	json.Unmarshal(b, &env)
	var msg string
	json.Unmarshal(env.Result, &msg)
	return resp.StatusCode, env.Result, msg, nil
}

// adminRefusal is the error of an admin request answered status (not the one wanted) with msg.
func adminRefusal(base string, status int, msg string) error {
	switch {
	case status == http.StatusUnauthorized:
		return fmt.Errorf("the IdP at %s refused the admin token (check --admin-token or --token)", base)
	case status == http.StatusNotFound && (msg == "" || msg == "Not found"):
		return fmt.Errorf("the IdP at %s has no admin routes: start it with --admin-token (IDP_ADMIN_TOKEN)", base)
	case msg != "":
		return fmt.Errorf("the IdP at %s refused: %s", base, msg)
	default:
		return fmt.Errorf("the IdP at %s answered %d %s", base, status, http.StatusText(status))
	}
}
