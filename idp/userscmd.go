package main

import (
	"context"
	"errors"
	"io"
)

// usersCmd is `idp users …`: the users of a running IdP, through its admin routes.
func usersCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return errors.New("idp users: not implemented yet")
}
