package main

import (
	"context"
	"errors"
	"fmt"

	"jwtidp/idp/boltdb"
	"jwtidp/idp/identity"
	"jwtidp/idp/pgstore"
)

// copyStore is `idp store copy`: everything in a bbolt data folder — users with their password
// hashes and emails, signing keys in every state, refresh families with every token hash they
// issued, browser sessions, the IdP's own secrets, registered clients and the consents users
// gave them, groups and their members, the links to upstream identities, the ids of deleted users (never reused there either)
// with the usernames and emails they left reserved, the audit trail with its ids, and the mail
// still queued in the outbox with its delivery state — into PostgreSQL, so that nobody has to
// log in again after the move and no mail is lost. Copying again is safe: every row is
// rewritten as the source has it, and no target a replica has served from (and so sent mail
// from) is copied into.
func copyStore(ctx context.Context, src *boltdb.DB, dst *pgstore.DB) (string, error) {
	n, err := copyIdentity(ctx, src, dst)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("copied %d users, %d signing keys, %d refresh families, %d sessions, %d secrets, %d clients, %d consents, %d groups, %d memberships, %d federations, %d deleted user ids, %d reserved usernames, %d audit events, %d queued mails",
		n.users, n.keys, n.families, n.sessions, n.secrets, n.clients, n.consents, n.groups, n.members, n.federations, n.deleted, n.reserved, n.audit, n.mail), nil
}

// copied counts what a copy stored. Authorization codes are not copied: they live a minute,
// and a client redeems one at the IdP that issued it. Nor are stored authorization requests:
// they live half an hour, and a browser whose request is gone starts again at its application.
type copied struct {
	users, keys, families, sessions, secrets, clients, consents, groups, members, federations, deleted, reserved, audit, mail int
}

func copyIdentity(ctx context.Context, src *boltdb.DB, dst *pgstore.DB) (copied, error) {
	var n copied
	// Keys first: a target another IdP has made its own keys in is refused before anything
	// is written into it.
	keys, err := src.Keys(ctx)
	if err != nil {
		return n, err
	}
	// The source's key set replaces the target's, which is empty on a first copy and the same
	// set on a re-run; a set the target made itself meanwhile would be replaced, so refuse that.
	err = dst.UpdateKeys(ctx, func(have []identity.SigningKey) ([]identity.SigningKey, error) {
		if len(have) > 0 && !sameKIDs(have, keys) {
			return nil, errors.New("the target already has other signing keys (did an IdP start on it?); copy into an empty database")
		}
		return keys, nil
	})
	if err != nil {
		return n, err
	}
	n.keys = len(keys)
	secrets, err := src.Secrets(ctx)
	if err != nil {
		return n, err
	}
	for name, v := range secrets {
		if err := dst.ImportSecret(ctx, name, v); err != nil {
			return n, fmt.Errorf("secret %s: %w", name, err)
		}
		n.secrets++
	}
	clients, err := src.ListClients(ctx)
	if err != nil {
		return n, err
	}
	for _, c := range clients {
		if err := dst.ImportClient(ctx, c); err != nil {
			return n, fmt.Errorf("client %s: %w", c.ID, err)
		}
		n.clients++
	}
	deleted, err := src.DeletedUserIDs(ctx)
	if err != nil {
		return n, err
	}
	for _, id := range deleted {
		if err := dst.ImportDeletedUser(ctx, id); err != nil {
			return n, fmt.Errorf("deleted user id %s: %w", id, err)
		}
		n.deleted++
	}
	reserved, err := src.ReservedNames(ctx)
	if err != nil {
		return n, err
	}
	for _, r := range reserved {
		if err := dst.ImportReservedName(ctx, r); err != nil {
			return n, fmt.Errorf("reserved username %s: %w", r.Username, err)
		}
		n.reserved++
	}
	if n.audit, err = copyAudit(ctx, src, dst); err != nil {
		return n, err
	}
	if n.groups, err = copyGroups(ctx, src, dst); err != nil {
		return n, err
	}
	mails, err := src.Outbox(ctx)
	if err != nil {
		return n, err
	}
	for _, m := range mails {
		if err := dst.ImportMail(ctx, m); err != nil {
			return n, fmt.Errorf("queued mail %s: %w", m.ID, err)
		}
		n.mail++
	}
	after := ""
	for {
		page, err := src.ListUsers(ctx, identity.ListOptions{After: after, Limit: identity.MaxListLimit})
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		for _, u := range page {
			if err := dst.ImportUser(ctx, u); err != nil {
				return n, fmt.Errorf("user %s: %w", u.ID, err)
			}
			n.users++
			sessions, err := src.ListSessions(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, s := range sessions {
				if err := dst.ImportSession(ctx, s); err != nil {
					return n, fmt.Errorf("session of user %s: %w", u.ID, err)
				}
				n.sessions++
			}
			families, err := src.ListFamilies(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, f := range families {
				hashes, err := src.FamilyTokenHashes(ctx, f.ID)
				if err != nil {
					return n, err
				}
				if err := dst.ImportFamily(ctx, f, hashes); err != nil {
					return n, fmt.Errorf("refresh family of user %s: %w", u.ID, err)
				}
				n.families++
			}
			// After the clients and the user, whom each consent references.
			consents, err := src.ListConsents(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, c := range consents {
				if err := dst.ImportConsent(ctx, c); err != nil {
					return n, fmt.Errorf("consent of user %s for %s: %w", u.ID, c.ClientID, err)
				}
				n.consents++
			}
			// After the groups and the user, whom each membership references.
			groups, err := src.UserGroups(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, g := range groups {
				if err := dst.ImportMember(ctx, g, u.ID); err != nil {
					return n, fmt.Errorf("membership of user %s in %s: %w", u.ID, g, err)
				}
				n.members++
			}
			// After the user, whom each link references.
			feds, err := src.UserFederations(ctx, u.ID)
			if err != nil {
				return n, err
			}
			for _, f := range feds {
				if err := dst.ImportFederation(ctx, f); err != nil {
					return n, fmt.Errorf("federation of user %s with %s: %w", u.ID, f.Connector, err)
				}
				n.federations++
			}
		}
		after = identity.NormalizeUsername(page[len(page)-1].Username)
	}
}

// copyGroups copies the groups, a page at a time; their members come with the users.
func copyGroups(ctx context.Context, src *boltdb.DB, dst *pgstore.DB) (int, error) {
	n := 0
	opt := identity.ListOptions{Limit: identity.MaxListLimit}
	for {
		page, err := src.ListGroups(ctx, opt)
		if err != nil || len(page) == 0 {
			return n, err
		}
		for _, g := range page {
			if err := dst.ImportGroup(ctx, g); err != nil {
				return n, fmt.Errorf("group %s: %w", g.Name, err)
			}
			n++
		}
		opt.After = page[len(page)-1].Name
	}
}

// copyAudit copies the audit trail, a page at a time from the newest, with its ids.
func copyAudit(ctx context.Context, src *boltdb.DB, dst *pgstore.DB) (int, error) {
	n := 0
	q := identity.AuditQuery{Limit: identity.MaxListLimit}
	for {
		page, err := src.ListAudit(ctx, q)
		if err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		if err := dst.ImportAudit(ctx, page...); err != nil {
			return n, fmt.Errorf("audit events before %d: %w", page[0].ID+1, err)
		}
		n += len(page)
		q.Before = page[len(page)-1].ID
	}
}

func sameKIDs(a, b []identity.SigningKey) bool {
	if len(a) != len(b) {
		return false
	}
	ids := map[string]bool{}
	for _, k := range a {
		ids[k.ID] = true
	}
	for _, k := range b {
		if !ids[k.ID] {
			return false
		}
	}
	return true
}
