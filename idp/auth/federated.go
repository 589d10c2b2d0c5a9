package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/idp/upstream"
	"jwtidp/shared/apperr"
)

// Upstream sign-ins: a connector proved who someone is upstream (an upstream.Identity);
// Federated decides which local user that is and hands back an Authentication for Complete,
// the one finisher, as every other sign-in does.
//
// A person is linked by (connector, upstream subject) only — never by an email, which an
// upstream may let anyone claim. The first sign-in makes a local user just in time (link:
// create), or asks the person to prove a local account's password once (link: existing).

// ErrLinkRequired: the connector says link: existing and this upstream subject is linked to
// no local user yet — the person must prove a local account's password once (LinkExisting).
// EFORBIDDEN; the LinkNeeded error that carries it holds the ticket.
var ErrLinkRequired = apperr.Errorf(apperr.EFORBIDDEN, "Sign in with your account here once to link it")

// ErrLinkTicket: a link ticket that is malformed, forged or expired. EINVALID.
var ErrLinkTicket = apperr.Errorf(apperr.EINVALID, "This sign-in has expired: start again from the login page")

// ErrSecondFactorRequired: the connector requires our second factor and the user has none.
var ErrSecondFactorRequired = apperr.Errorf(apperr.EFORBIDDEN,
	"This sign-in requires a second factor here: add an authenticator app to your account, or ask an administrator")

// ErrAlreadyLinked: the local account is linked to another identity of the same connector (the
// store decides it, in the link's transaction).
var ErrAlreadyLinked = identity.ErrConnectorLinked

// LinkNeeded is Federated's error when the person must link a local account: Ticket is an
// opaque, short-lived, tamper-proof value naming the upstream identity, for LinkExisting;
// Upstream is how the upstream names the person (its username, else its email), for the page
// to show whose account would be linked.
type LinkNeeded struct{ Ticket, Upstream string }

func (e *LinkNeeded) Error() string { return ErrLinkRequired.Error() }
func (e *LinkNeeded) Unwrap() error { return ErrLinkRequired }

// LinkTicketTTL bounds how long a person has to prove their local account.
const LinkTicketTTL = 10 * time.Minute

// maxUpstreamGroups bounds the groups one sign-in may sync: each is a write.
const maxUpstreamGroups = 100

// errCheckedMeanwhile: another refresh claimed the directory check since the link was read.
var errCheckedMeanwhile = errors.New("checked meanwhile")

// upstreamCheckEvery is how often the refresh grant asks a directory about a user (API.md: at
// most once a minute).
const upstreamCheckEvery = time.Minute

// Federated turns what connector proved into a sign-in: the local user linked to (connector,
// subject) — made just in time with link: create, a *LinkNeeded error with link: existing —
// with the upstream's groups mapped into ours, refused (ErrInvalidCredentials) when the local
// user is disabled. Its Authentication has AMR "fed" (oidc) or "pwd" (ldap) and IDP the
// connector's id; Complete then asks our second factor of a user who has one.
func (s *SignIn) Federated(ctx context.Context, connector string, id upstream.Identity) (Authentication, error) {
	c, ok := s.Connectors[connector]
	if !ok || s.Federations == nil {
		return Authentication{}, apperr.Errorf(apperr.ENOTFOUND, "No such sign-in provider")
	}
	if id.Subject == "" || len(id.Subject) > 1024 {
		return Authentication{}, apperr.Errorf(apperr.EINVALID, "The provider named nobody")
	}
	id.Connector = connector
	groups := c.Groups.Apply(id.Groups)
	if len(groups) > maxUpstreamGroups {
		s.Logger.WarnContext(ctx, "upstream sign-in: too many groups, the first kept", "connector", connector, "groups", len(groups), "kept", maxUpstreamGroups)
		groups = groups[:maxUpstreamGroups]
	}
	f, err := s.Federations.GetFederation(ctx, connector, id.Subject)
	switch {
	case errors.Is(err, identity.ErrNoFederation) && c.Link == upstream.LinkExisting:
		t, err := s.linkTicket(id)
		if err != nil {
			return Authentication{}, err
		}
		s.Logger.InfoContext(ctx, "upstream sign-in: a local account must be linked", "connector", connector)
		shown := id.Username
		if shown == "" {
			shown = id.Email
		}
		return Authentication{}, &LinkNeeded{Ticket: t, Upstream: shown}
	case errors.Is(err, identity.ErrNoFederation):
		if f, err = s.createFederated(ctx, id, groups); err != nil {
			return Authentication{}, err
		}
	case err != nil:
		return Authentication{}, err
	}
	return s.federatedSignIn(ctx, c, f, groups)
}

// federatedSignIn is the Authentication of the user f links, once their groups are synced.
func (s *SignIn) federatedSignIn(ctx context.Context, c upstream.Config, f identity.Federation, groups []string) (Authentication, error) {
	u, err := s.Users.GetUser(ctx, f.UserID)
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return Authentication{}, ErrInvalidCredentials // deleted: its links went with it
	case err != nil:
		return Authentication{}, err
	case u.Disabled:
		// Disabling here wins over the upstream.
		s.record(ctx, s.event(unproven(ctx), identity.AuditLogin, u.ID, Failure, "upstream "+c.ID+": the user is disabled"))
		return Authentication{}, ErrInvalidCredentials
	case c.SecondFactor == upstream.SecondFactorRequired && !u.Factors.HasTOTP():
		s.record(ctx, s.event(unproven(ctx), identity.AuditLogin, u.ID, Failure, "upstream "+c.ID+": a second factor is required and the user has none"))
		return Authentication{}, ErrSecondFactorRequired
	}
	if err := s.syncGroups(ctx, f, groups); err != nil {
		return Authentication{}, err
	}
	amr := []string{AMRFederated}
	if c.Type == upstream.TypeLDAP {
		amr = []string{"pwd"} // the password, checked by the directory
	}
	return Authentication{User: u, AMR: amr, AuthTime: s.Now().UTC(), IDP: c.ID}, nil
}

// createFederated makes a local user for id just in time, linked in the same transaction: its
// username the upstream's made unique, its email only one the upstream vouches for and nobody
// here has. A concurrent first sign-in of the same subject that won is used instead.
func (s *SignIn) createFederated(ctx context.Context, id upstream.Identity, groups []string) (identity.Federation, error) {
	now := s.Now().UTC()
	email := ""
	if id.EmailVerified && identity.ValidateEmail(id.Email) == nil {
		email = id.Email
	}
	base := usernameFrom(id.Username)
	for n := 1; ; n++ {
		uid, err := token.RandomString(s.Random, 16)
		if err != nil {
			return identity.Federation{}, err
		}
		name, err := s.candidate(base, n)
		if err != nil {
			return identity.Federation{}, err
		}
		u := identity.User{ID: uid, Username: name, CreatedAt: now, Email: email, EmailVerified: email != ""}
		f := identity.Federation{Connector: id.Connector, Subject: id.Subject, UserID: uid, CreatedAt: now, CheckedAt: now}
		err = s.audited(ctx, func(ctx context.Context) error { return s.Federations.CreateFederatedUser(ctx, u, f) },
			s.event(ctx, identity.AuditSignup, uid, Success, "through upstream "+id.Connector))
		switch {
		case err == nil:
			s.Logger.InfoContext(ctx, "upstream sign-in: user created", "connector", id.Connector, "sub", uid)
			return f, nil
		case errors.Is(err, identity.ErrFederationTaken):
			return s.Federations.GetFederation(ctx, id.Connector, id.Subject)
		case errors.Is(err, identity.ErrEmailTaken):
			email = "" // someone here has it: no link by email, and no error either
		case apperr.Code(err) == apperr.ECONFLICT && n < 20:
			// the username (or a reserved one) is taken: the next candidate
		default:
			return identity.Federation{}, err
		}
	}
}

// usernameFrom makes an upstream's username fit ours: [A-Za-z0-9._-], 3 to 59 characters
// (room for candidate's longest suffix, "-" and four random characters, within 64); "user"
// when nothing is left.
func usernameFrom(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			b.WriteRune(c)
		case c == '@':
			// an email as the username: its local part
			if b.Len() > 0 {
				return usernameFrom(b.String())
			}
		}
		if b.Len() >= maxBaseUsername {
			break
		}
	}
	name := b.String()
	if len(name) < 3 {
		name = "user" + name
	}
	return name
}

// maxBaseUsername leaves room for a candidate's suffix within the 64 characters of a username.
const maxBaseUsername = 59

// candidate is the n-th username tried for base: base, base-2, … base-9, then base and a random
// suffix.
func (s *SignIn) candidate(base string, n int) (string, error) {
	switch {
	case n == 1:
		return base, nil
	case n < 10:
		return fmt.Sprintf("%s-%d", base, n), nil
	}
	r, err := token.RandomString(s.Random, 3)
	if err != nil {
		return "", err
	}
	return base + "-" + strings.ToLower(strings.Map(func(c rune) rune {
		if c == '_' || c == '-' {
			return 'x'
		}
		return c
	}, r)), nil
}

// syncGroups makes the user's membership of the groups the upstream's map to what it says
// now: groups it no longer names are left, the new ones joined (made when missing). Only the
// groups the upstream gave at the last sync are ever left: a group an admin gave stays, unless
// the upstream named it too and no longer does. Each change is a write of its own (not one
// transaction): a sync cut short leaves the link's record as it was, so the next one redoes it.
// Then the link records the groups and when it was last checked.
func (s *core) syncGroups(ctx context.Context, f identity.Federation, groups []string) error {
	if s.Groups != nil {
		for _, g := range groups {
			if slices.Contains(f.Groups, g) {
				continue
			}
			err := s.Groups.CreateGroup(ctx, identity.Group{Name: g, CreatedAt: s.Now().UTC()})
			if err != nil && !errors.Is(err, identity.ErrGroupTaken) {
				return err
			}
			err = s.audited(ctx, func(ctx context.Context) error { return s.Groups.AddMember(ctx, g, f.UserID) },
				s.event(ctx, identity.AuditGroupMemberAdded, f.UserID, Success, g+" (upstream "+f.Connector+")"))
			if err != nil && !errors.Is(err, identity.ErrAlreadyMember) {
				return err
			}
		}
		for _, g := range f.Groups {
			if slices.Contains(groups, g) {
				continue
			}
			err := s.audited(ctx, func(ctx context.Context) error { return s.Groups.RemoveMember(ctx, g, f.UserID) },
				s.event(ctx, identity.AuditGroupMemberRemoved, f.UserID, Success, g+" (upstream "+f.Connector+")"))
			if err != nil && apperr.Code(err) != apperr.ENOTFOUND {
				return err
			}
		}
	}
	now := s.Now().UTC()
	_, err := s.Federations.UpdateFederation(ctx, f.Connector, f.Subject, func(cur identity.Federation) (identity.Federation, error) {
		cur.Groups, cur.CheckedAt = groups, now
		return cur, nil
	})
	return err
}

// LinkExisting links the upstream identity a LinkNeeded ticket names to the local account c
// proves in full — its password and, when it has one, its second factor (c.OTP), throttled and
// recorded as a login; a directory's accounts are not asked — and signs in as Federated would.
// The link is made only once the account is proven whole: a stolen password alone cannot tie
// an attacker's upstream account to it. ErrOTPRequired asks for the code.
func (s *SignIn) LinkExisting(ctx context.Context, ticket string, c Credentials) (Authentication, error) {
	id, err := s.readLinkTicket(ticket)
	if err != nil {
		return Authentication{}, err
	}
	cfg, ok := s.Connectors[id.Connector]
	if !ok || cfg.Link != upstream.LinkExisting {
		return Authentication{}, ErrLinkTicket
	}
	c.Deferred, c.LocalOnly = false, true
	a, err := s.Authenticate(ctx, c)
	if err != nil {
		return Authentication{}, err
	}
	now := s.Now().UTC()
	f := identity.Federation{Connector: id.Connector, Subject: id.Subject, UserID: a.User.ID, CreatedAt: now, CheckedAt: now}
	// The owner is told: a link is a way in that a password change does not end.
	mctx := s.withNotice(ctx, a.User, NoticeLinked)
	err = s.audited(mctx, func(ctx context.Context) error { return s.Federations.CreateFederation(ctx, f) },
		s.event(ctx, identity.AuditFederationLinked, a.User.ID, Success, "upstream "+id.Connector))
	if err == nil {
		s.mailQueued(mctx)
	}
	switch {
	case errors.Is(err, identity.ErrFederationTaken):
		// linked meanwhile (the same person twice): sign in as that link says
		if f, err = s.Federations.GetFederation(ctx, id.Connector, id.Subject); err != nil {
			return Authentication{}, err
		}
	case err != nil:
		return Authentication{}, err
	}
	s.Logger.InfoContext(ctx, "upstream identity linked to a local account", "connector", id.Connector, "sub", f.UserID)
	fa, err := s.federatedSignIn(ctx, cfg, f, cfg.Groups.Apply(id.Groups))
	if err == nil && slices.Contains(a.AMR, AMRMultiFactor) {
		fa.AMR = onTopOf(fa.AMR, a.AMR) // the code was given here: not asked again
	}
	return fa, err
}

// linkClaims is what a link ticket carries.
type linkClaims struct {
	Identity upstream.Identity `json:"id"`
	Expires  int64             `json:"exp"`
}

// linkTicket seals id for LinkExisting: its JSON and an HMAC under the upstream key.
func (s *core) linkTicket(id upstream.Identity) (string, error) {
	if len(s.UpstreamKey) < 32 {
		return "", apperr.Errorf(apperr.EINTERNAL, "no upstream key")
	}
	b, err := json.Marshal(linkClaims{Identity: id, Expires: s.Now().Add(LinkTicketTTL).Unix()})
	if err != nil {
		return "", err
	}
	body := base64.RawURLEncoding.EncodeToString(b)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.ticketMAC(body)), nil
}

func (s *core) ticketMAC(body string) []byte {
	m := hmac.New(sha256.New, s.UpstreamKey)
	m.Write([]byte("jwtidp upstream link ticket\x00" + body))
	return m.Sum(nil)
}

// readLinkTicket opens a ticket linkTicket made and has not expired. ErrLinkTicket otherwise.
func (s *core) readLinkTicket(t string) (upstream.Identity, error) {
	body, mac, ok := strings.Cut(t, ".")
	if !ok || len(t) > 16<<10 || len(s.UpstreamKey) < 32 {
		return upstream.Identity{}, ErrLinkTicket
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil || !hmac.Equal(got, s.ticketMAC(body)) {
		return upstream.Identity{}, ErrLinkTicket
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return upstream.Identity{}, ErrLinkTicket
	}
	var c linkClaims
	if json.Unmarshal(b, &c) != nil || c.Identity.Connector == "" || c.Identity.Subject == "" || s.Now().Unix() > c.Expires {
		return upstream.Identity{}, ErrLinkTicket
	}
	return c.Identity, nil
}

// CheckUpstream is the refresh grant's question for a user linked to a directory: still there
// and active? Each directory is asked at most once a minute per user (Federation.CheckedAt),
// and the user's groups follow its answer. upstream.ErrGone ends the refresh; a directory that
// cannot be asked is logged and lets it pass (an outage does not sign everyone out).
func (s *core) CheckUpstream(ctx context.Context, userID string) error {
	_, err := s.checkUpstream(ctx, userID)
	return err
}

// checkUpstream is CheckUpstream; synced says a directory answered and the user's groups were
// set from its answer.
func (s *core) checkUpstream(ctx context.Context, userID string) (synced bool, err error) {
	if len(s.Directories) == 0 || s.Federations == nil {
		return false, nil
	}
	links, err := s.Federations.UserFederations(ctx, userID)
	if err != nil {
		return false, err
	}
	now := s.Now()
	for _, f := range links {
		dir, ok := s.Directories[f.Connector]
		if !ok || now.Sub(f.CheckedAt) < upstreamCheckEvery {
			continue
		}
		// The check is claimed in the store first: of the replicas refreshing this user at
		// once, only the one that moves CheckedAt on asks the directory (a failure too waits
		// the minute out, rather than being asked at every refresh while it is down).
		_, err := s.Federations.UpdateFederation(ctx, f.Connector, f.Subject, func(cur identity.Federation) (identity.Federation, error) {
			if now.Sub(cur.CheckedAt) < upstreamCheckEvery {
				return cur, errCheckedMeanwhile
			}
			cur.CheckedAt = now.UTC()
			return cur, nil
		})
		switch {
		case errors.Is(err, errCheckedMeanwhile):
			continue
		case err != nil:
			return synced, err
		}
		id, err := dir.Refresh(ctx, upstream.Identity{Connector: f.Connector, Subject: f.Subject})
		s.Statuses.Record(f.Connector, now, err)
		switch {
		case errors.Is(err, upstream.ErrGone):
			s.Logger.InfoContext(ctx, "refresh refused: gone from the directory", "connector", f.Connector, "sub", userID)
			return synced, err
		case err != nil:
			s.Logger.WarnContext(ctx, "directory not asked at refresh", "connector", f.Connector, "sub", userID, "err", err)
			continue
		}
		synced = true
		if err := s.syncGroups(ctx, f, s.Connectors[f.Connector].Groups.Apply(id.Groups)); err != nil {
			return synced, err
		}
	}
	return synced, nil
}
