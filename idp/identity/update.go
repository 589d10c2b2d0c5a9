package identity

import "jwtidp/shared/apperr"

// The rules every store applies to an updater's result before it stores it, so that no backend
// states them again: what an update may not change, and the entity's own invariants. EINVALID.

// CheckUpdate refuses next as the update of u when it changes the id or the credential epoch
// (only ChangeCredentials moves that) or breaks User.Validate.
func (u User) CheckUpdate(next User) error {
	if next.ID != u.ID || next.Epoch != u.Epoch {
		return apperr.Errorf(apperr.EINVALID, "An update may not change a user's id or credential epoch")
	}
	return next.Validate()
}

// CheckUpdate refuses next as the update of c when it changes the id or breaks Client.Validate.
func (c Client) CheckUpdate(next Client) error {
	if next.ID != c.ID {
		return apperr.Errorf(apperr.EINVALID, "An update may not change a client's id")
	}
	return next.Validate()
}

// CheckUpdate refuses next as the update of f when it changes the id or the user or breaks
// Family.Validate.
func (f Family) CheckUpdate(next Family) error {
	if next.ID != f.ID || next.UserID != f.UserID {
		return apperr.Errorf(apperr.EINVALID, "An update may not change a refresh family's id or user")
	}
	return next.Validate()
}

// CheckUpdate refuses next as the update of s when it changes the id, the user, the credential
// epoch or whether it is pending (a pre-session becomes a session only as a new one, made after
// the second factor) or breaks Session.Validate.
func (s Session) CheckUpdate(next Session) error {
	if next.ID != s.ID || next.UserID != s.UserID || next.Epoch != s.Epoch || next.Pending != s.Pending {
		return apperr.Errorf(apperr.EINVALID, "An update may not change a session's id, user, epoch or pending state")
	}
	return next.Validate()
}
