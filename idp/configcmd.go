package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"jwtidp/idp/auth"
	"jwtidp/idp/configfile"
	"jwtidp/idp/httpapi"
	"jwtidp/shared/apperr"
	"jwtidp/shared/envflag"
	"jwtidp/shared/service"
)

// configCmd is `idp config check FILE`: every mistake of the file as FILE:LINE: message, or
// "FILE: ok". It checks what serve would (every setting's value and rule, with the defaults for
// the rest; the clients, scopes and access rules), without the environment.
func configCmd(p *service.Program) service.Func {
	return func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
		if len(args) != 2 || args[0] != "check" {
			return errors.New("usage: idp config check FILE")
		}
		path := args[1]
		_, errs := checkConfig(p, path, nil)
		if len(errs) == 0 {
			fmt.Fprintf(stdout, "%s: ok\n", path)
			return nil
		}
		for _, m := range mistakes(path, errs) {
			fmt.Fprintln(stdout, m)
		}
		return fmt.Errorf("%s: %d mistake(s)", path, len(errs))
	}
}

// checkConfig reads the file at path as serve would with the settings given (args; no
// variable is read).
func checkConfig(p *service.Program, path string, given []string) (*configfile.File, []error) {
	fs := envflag.New(p.Name+" serve", io.Discard)
	p.DefineSettings(fs)
	c := &config{}
	c.flags(fs)
	errs := fs.ParseAll(append(slices.Clone(given), "--config", path), nil)
	return c.file, errs
}

// mistakes are errs as lines that each begin with the file (a rule's error names its settings
// by key, and its line when the file gave one), in the order of their lines.
func mistakes(path string, errs []error) []string {
	out := make([]string, len(errs))
	for i, err := range errs {
		out[i] = err.Error()
		if !strings.HasPrefix(out[i], path+":") {
			out[i] = path + ": " + out[i]
		}
	}
	line := func(m string) int {
		n, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(m, path+":"), ":", 2)[0])
		return n
	}
	slices.SortStableFunc(out, func(a, b string) int { return line(a) - line(b) })
	return out
}

// reload re-reads the configuration file: when it checks (as at start, under the same flags and
// variables), its clients are declared (created
// or updated) and its scopes and access rules replace the running ones in one swap; when it
// does not, or a client cannot be declared, the running configuration stays. Either way it is
// logged and audited (config_reloaded, config_refused). The file's settings are read at start
// only: a changed one is logged as waiting for the next start.
func (c *config) reload(ctx context.Context, svc *auth.Service, logger *slog.Logger) error {
	c.reloading.Lock()
	defer c.reloading.Unlock()
	cur := c.live.Load()
	// Checked as at start: under the flags and variables given then (--clients among them).
	f, errs := checkConfig(c.program, c.configFile, c.fs.Given("config"))
	if len(errs) > 0 {
		ms := mistakes(c.configFile, errs)
		logger.ErrorContext(ctx, "configuration file refused: the running configuration stays", "file", c.configFile, "mistakes", strings.Join(ms, "; "))
		svc.RecordConfig(ctx, false, strings.Join(ms, "; "))
		return apperr.Errorf(apperr.EINVALID, "The configuration file was refused, the running configuration stays: %s", strings.Join(ms, "; "))
	}
	if err := declareClients(ctx, svc, f.Clients, c.configFile); err != nil {
		logger.ErrorContext(ctx, "configuration file refused: the running configuration stays", "file", c.configFile, "err", err)
		svc.RecordConfig(ctx, false, "a client could not be declared")
		return err
	}
	for _, id := range removedClients(cur.file, f) {
		logger.WarnContext(ctx, "a client removed from the configuration file stays registered (idp clients remove deletes it)", "client", id)
	}
	if changed := changedSettings(c.file, f); len(changed) > 0 {
		logger.WarnContext(ctx, "settings changed in the configuration file take effect at the next start", "keys", strings.Join(changed, ","))
	}
	c.live.Store(newLive(f))
	rules := "none"
	if f.Access != nil {
		rules = "loaded"
	}
	logger.InfoContext(ctx, "configuration file reloaded", "file", c.configFile, "clients", len(f.Clients), "scopes", len(f.Scopes), "access_rules", rules)
	svc.RecordConfig(ctx, true, fmt.Sprintf("%s: %d clients, %d limited scopes, access rules %s", c.configFile, len(f.Clients), len(f.Scopes), rules))
	return nil
}

// removedClients are the clients of before that after no longer has.
func removedClients(before, after *configfile.File) []string {
	var out []string
	if before == nil {
		return nil
	}
	for _, ci := range before.Clients {
		if !slices.ContainsFunc(after.Clients, func(x httpapi.ClientInfo) bool { return x.ClientID == ci.ClientID }) {
			out = append(out, ci.ClientID)
		}
	}
	return out
}

// changedSettings are the keys whose value differs between two readings of the file.
func changedSettings(before, after *configfile.File) []string {
	values := func(f *configfile.File) map[string]string {
		m := map[string]string{}
		for _, v := range f.Settings {
			m[envflag.Key(v.Name)] = v.Value
		}
		return m
	}
	a, b := values(before), values(after)
	var out []string
	for k, v := range b {
		if old, ok := a[k]; !ok || old != v {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	// The connectors are made at start: a change waits for the next, as a setting's does.
	if !reflect.DeepEqual(before.Connectors, after.Connectors) {
		out = append(out, configfile.SectionConnectors)
	}
	if !slices.Equal(before.PasswordBackends, after.PasswordBackends) {
		out = append(out, configfile.SectionBackends)
	}
	slices.Sort(out)
	return out
}
