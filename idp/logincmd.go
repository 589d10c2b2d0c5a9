package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"jwtidp/idp/httpapi"
	"jwtidp/shared/envflag"
)

const loginUsage = "usage: idp login --device [--url URL] [--client-id idp-cli] [--scope SCOPES] [--out FILE]"

// loginCmd is `idp login --device`: the command line signs a person in with the device
// authorization grant (RFC 8628). It asks the IdP for a code, prints where to enter it, polls
// /token as the IdP says (slowing down when told), and saves the token answer to --out with mode
// 0600 (default: $XDG_CONFIG_HOME/jwtidp/tokens.json, or ~/.config/jwtidp/tokens.json). The
// client (default idp-cli) is a public client with the device_code grant that the operator
// declares (README: The device grant).
func loginCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := envflag.New("idp login", stderr)
	device := fs.Bool("device", "", false, "sign in with the device authorization grant (the only way there is)")
	base := fs.String("url", "IDP_URL", "http://127.0.0.1:8080", "the IdP's URL")
	clientID := fs.String("client-id", "IDP_CLIENT_ID", "idp-cli", "the public client to sign in as (it needs the device_code grant)")
	scope := fs.String("scope", "", "", "scopes to ask for (space-separated; default: all of the client's)")
	out := fs.String("out", "", "", "file to save the tokens to (default: $XDG_CONFIG_HOME/jwtidp/tokens.json or ~/.config/jwtidp/tokens.json)")
	if err := fs.Parse(args, getenv); err != nil {
		return fmt.Errorf("%v\n%s", err, loginUsage)
	}
	if !*device {
		return fmt.Errorf("idp login signs in with --device only\n%s", loginUsage)
	}
	file := *out
	if file == "" {
		dir := getenv("XDG_CONFIG_HOME")
		if dir == "" {
			home := getenv("HOME")
			if home == "" {
				return errors.New("no --out given, and neither XDG_CONFIG_HOME nor HOME is set")
			}
			dir = filepath.Join(home, ".config")
		}
		file = filepath.Join(dir, "jwtidp", "tokens.json")
	}
	root := strings.TrimSuffix(*base, "/")
	form := url.Values{"client_id": {*clientID}}
	if *scope != "" {
		form.Set("scope", *scope)
	}
	var da httpapi.DeviceAuthorizationResponse
	if _, err := oauthPost(ctx, root+"/device/authorize", form, &da); err != nil {
		return err
	}
	if da.DeviceCode == "" || da.UserCode == "" {
		return fmt.Errorf("unexpected answer from %s/device/authorize", root)
	}
	fmt.Fprintf(stdout, "To sign in, open %s and enter the code %s\n(or open %s)\n", da.VerificationURI, da.UserCode, da.VerificationURIComplete)
	interval := time.Duration(max(da.Interval, 5)) * time.Second
	poll := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.DeviceCode}, "client_id": {*clientID}}
	for {
		if err := loginSleep(ctx, interval); err != nil {
			return err
		}
		var tokens json.RawMessage
		code, err := oauthPost(ctx, root+"/token", poll, &tokens)
		switch code {
		case "":
		case "authorization_pending":
			continue
		case "slow_down":
			interval += 5 * time.Second
			continue
		case "access_denied":
			return errors.New("the sign-in was denied")
		case "expired_token":
			return errors.New("the code expired before it was entered; run idp login again")
		}
		if err != nil {
			return err
		}
		if err := saveTokens(file, tokens); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Signed in; the tokens are in %s\n", file)
		return nil
	}
}

// loginSleep waits d, or until ctx ends: a variable so that a test's device waits on its fake
// clock instead.
var loginSleep = func(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// oauthPost posts form and decodes a 200's JSON into v. An OAuth error answer returns its code
// (and an error naming it and its description); anything else is an error.
func oauthPost(ctx context.Context, endpoint string, form url.Values, v any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			return "", fmt.Errorf("unexpected answer from %s: %v", endpoint, err)
		}
		return "", nil
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return "", fmt.Errorf("%s answered %s", endpoint, resp.Status)
	}
	if e.Description != "" {
		return e.Error, fmt.Errorf("%s: %s", e.Error, e.Description)
	}
	return e.Error, errors.New(e.Error)
}

// saveTokens writes the token answer to file with mode 0600 (its folder made 0700 if missing),
// through a temporary file renamed into place, so no other user can read it at any moment and a
// failure leaves the old file whole.
func saveTokens(file string, tokens json.RawMessage) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tokens-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(tokens, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
