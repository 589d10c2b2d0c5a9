package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"jwtidp/idp/upstream"
	"jwtidp/shared/envflag"
)

const connectorsUsage = "usage: idp connectors list [--url URL] [--admin-token TOKEN | --token ACCESS_TOKEN]\n" +
	"Each upstream connector of a running IdP: id, type, name, last success, last error and its words."

// connectorsCmd is `idp connectors list`: what each upstream connector last did, through the
// admin route /admin/connectors (never a secret: the connector's words only).
func connectorsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		return errors.New(connectorsUsage)
	}
	fs := envflag.New("idp connectors list", stderr)
	admin := addAdminFlags(fs)
	if err := fs.Parse(args[1:], getenv); err != nil {
		return err
	}
	base := *admin.base
	token, err := admin.credential()
	if err != nil {
		return err
	}
	result, err := adminCall(ctx, base, token, http.MethodGet, "/admin/connectors", nil, http.StatusOK)
	if err != nil {
		return err
	}
	var list []upstream.Status
	if err := json.Unmarshal(result, &list); err != nil {
		return fmt.Errorf("unexpected answer from %s: %v", base, err)
	}
	when := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "ID\tTYPE\tNAME\tLAST SUCCESS\tLAST ERROR\tERROR\n")
	for _, s := range list {
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Type, s.Name, when(s.LastSuccess), when(s.LastError), s.Error)
	}
	return nil
}
