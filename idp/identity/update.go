package identity

import (
	"slices"

	"jwtidp/shared/apperr"
)

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

// The rules every store applies inside the transaction of an Update method, around the
// updater it was given: what the updater sees, what of its result is stored, and what the
// method returns. Each backend calls them and keeps only its own reads and writes.

// Apply runs fn, the updater given to UpdateUser, UpdateClient or UpdateSession, on old (the
// value as stored now) and checks its result with old.CheckUpdate. Nothing is stored when the
// error is not nil: fn's own error is returned as it is.
func Apply[T interface{ CheckUpdate(T) error }](old T, fn func(T) (T, error)) (T, error) {
	next, err := fn(old)
	if err != nil {
		return next, err
	}
	return next, old.CheckUpdate(next)
}

// ApplyCredentials is Apply for ChangeCredentials: the result moves to the next credential
// epoch, which ends what was made with the old credentials.
func ApplyCredentials(old User, fn func(User) (User, error)) (User, error) {
	next, err := Apply(old, fn)
	next.Epoch++
	return next, err
}

// ApplyStep runs step, the updater of UpdateFamilyByToken, on f (the family as stored now) and
// u (its user as stored now, zero when gone). keep says whether next is stored: also when step
// fails with a family to keep (a revocation on reuse), not when it fails with none or when its
// result breaks f.CheckUpdate. err is what UpdateFamilyByToken returns with next.
func (f Family) ApplyStep(u User, step func(Family, User) (Family, error)) (next Family, keep bool, err error) {
	next, err = step(f, u)
	if err != nil && next.ID == "" {
		return next, false, err
	}
	if cerr := f.CheckUpdate(next); cerr != nil {
		return Family{}, false, cerr
	}
	return next, true, err
}

// ApplyUpdate runs fn, the updater of UpdateCode, on a copy of c (the code as stored now) with
// lists of its own, so what fn does to them cannot reach c. keep says whether next is stored;
// when it is not, next is what UpdateCode returns with err: c as stored when fn refused (a caller
// acts on a replay from it), nothing when fn's result breaks c.CheckUpdate.
func (c AuthCode) ApplyUpdate(fn func(AuthCode) (AuthCode, error)) (next AuthCode, keep bool, err error) {
	given := c
	given.Scopes, given.AMR = slices.Clone(c.Scopes), slices.Clone(c.AMR)
	if next, err = fn(given); err != nil {
		return c, false, err
	}
	if err := c.CheckUpdate(next); err != nil {
		return AuthCode{}, false, err
	}
	return next, true, nil
}

// ApplyKeys runs update, the updater of UpdateKeys, on the stored set old and checks its
// result: every key has an id of its own, else EINVALID. gone are the ids of the keys of old the
// result leaves out, which the store deletes. update is given a list of its own: what it does to
// it cannot reach old.
func ApplyKeys(old []SigningKey, update func([]SigningKey) ([]SigningKey, error)) (next []SigningKey, gone []string, err error) {
	if next, err = update(slices.Clone(old)); err != nil {
		return nil, nil, err
	}
	keep := map[string]bool{}
	for _, k := range next {
		if k.ID == "" || keep[k.ID] {
			return nil, nil, apperr.Errorf(apperr.EINVALID, "Signing keys: every key needs an id of its own")
		}
		keep[k.ID] = true
	}
	for _, k := range old {
		if !keep[k.ID] {
			gone = append(gone, k.ID)
		}
	}
	return next, gone, nil
}

// CheckEpoch is the rule of CreateSession and CreateFamily: what is made for credentials of the
// user userID at epoch is stored only if u, that user as stored now (zero when gone), still has
// them; else ErrStaleCredentials.
func CheckEpoch(u User, userID string, epoch int64) error {
	if u.ID == "" || u.ID != userID || u.Epoch != epoch {
		return ErrStaleCredentials
	}
	return nil
}

// KindLimit is how many sessions of s's kind a user may have: MaxPendingPerUser pre-sessions,
// MaxSessionsPerUser others.
func (s Session) KindLimit() int {
	if s.Pending {
		return MaxPendingPerUser
	}
	return MaxSessionsPerUser
}

// Evicts returns the sessions that s, a new session, ends when it is stored: of the user's
// sessions (oldest first), the oldest of s's kind beyond the newest KindLimit-1.
func (s Session) Evicts(sessions []Session) []Session {
	same := slices.DeleteFunc(slices.Clone(sessions), func(o Session) bool { return o.Pending != s.Pending })
	return same[:max(0, len(same)-s.KindLimit()+1)]
}

// Conflicts of users every store reports alike. ECONFLICT.
var (
	ErrUserIDTaken   = apperr.Errorf(apperr.ECONFLICT, "User id already taken")
	ErrUsernameTaken = apperr.Errorf(apperr.ECONFLICT, "User already exists")
)

// UniqueNames are what no two users may share, as they are compared: the normalized username
// and email ("" for none).
type UniqueNames struct{ Username, Email string }

// Names are u's unique names.
func (u User) Names() UniqueNames {
	return UniqueNames{Username: NormalizeUsername(u.Username), Email: NormalizeEmail(u.Email)}
}

// Claims compares the unique names of a user before and after a write (before is zero for a
// new user): claimed are those after has and before had not — each must be nobody else's
// (ErrUsernameTaken, ErrEmailTaken), a reservation's included — and freed those before had and
// after has not. A name in another letter case is no change. "" for none.
func Claims(before, after User) (claimed, freed UniqueNames) {
	b, a := before.Names(), after.Names()
	if a.Username != b.Username {
		claimed.Username, freed.Username = a.Username, b.Username
	}
	if a.Email != b.Email {
		claimed.Email, freed.Email = a.Email, b.Email
	}
	return claimed, freed
}

// CounterWrite is what a store does with the counter an updater of UpdateCodeFailures or
// UpdateThrottle returns.
type CounterWrite int

const (
	CounterUnchanged CounterWrite = iota // equal to what is stored (the zero counter: none): write nothing
	CounterDelete                        // the zero counter: delete the stored one
	CounterStore                         // store it
)

// WriteCounter is what a store does with next, an updater's counter, when old is stored (the
// zero counter when there is none).
func WriteCounter(old, next ThrottleCounter) CounterWrite {
	switch {
	case next == old:
		return CounterUnchanged
	case next == ThrottleCounter{}:
		return CounterDelete
	}
	return CounterStore
}
