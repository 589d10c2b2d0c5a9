package identity

import (
	"context"
	"slices"
	"strings"
	"time"

	"jwtidp/shared/apperr"
)

// DeviceCode is a device authorization (RFC 8628) as the IdP keeps it: the hash of the
// device_code the device polls with, the user code a person types on /device, what the device
// asked for, and the person's answer. Its status goes from pending to approved or denied once;
// an approved one issues tokens once (Used), both decided in the store's transaction.
type DeviceCode struct {
	Hash     string   // SHA-256 of the device_code
	UserCode string   // UserCodeLength letters of UserCodeAlphabet, normalized (no dash)
	ClientID string   //
	Scopes   []string // asked for, within the client's
	Resource string   `json:",omitempty"` // RFC 8707, when asked for
	Status   string   // DevicePending, DeviceApproved or DeviceDenied
	// The approving person's sign-in: set once, with DeviceApproved.
	UserID    string    `json:",omitempty"`
	SessionID string    `json:",omitempty"`
	Epoch     int64     `json:",omitempty"`
	AuthTime  time.Time `json:",omitzero"`
	AMR       []string
	IDP       string `json:",omitempty"`

	CreatedAt  time.Time
	ExpiresAt  time.Time
	Interval   int       // seconds the device must wait between polls; slow_down adds DeviceSlowDown
	LastPollAt time.Time `json:",omitzero"`
	Used       bool      // the approved code issued its tokens
}

// The statuses of a device code.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
)

// RFC 8628 §3.2 and §6.1: a user code of 8 letters from an alphabet with no vowels (no words)
// and no look-alikes, 20^8 ≈ 2.6·10^10 codes; it lives DeviceCodeTTL, the device polls every
// DeviceInterval and each slow_down adds DeviceSlowDown.
const (
	UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	UserCodeLength   = 8
	DeviceCodeTTL    = 600 * time.Second
	DeviceInterval   = 5
	DeviceSlowDown   = 5
)

// NormalizeUserCode is the stored form of a user code as a person typed it: upper case, without
// dashes and spaces. ok is false when the result is not UserCodeLength letters of the alphabet.
func NormalizeUserCode(typed string) (code string, ok bool) {
	code = strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, typed)
	if len(code) != UserCodeLength {
		return "", false
	}
	for _, r := range code {
		if !strings.ContainsRune(UserCodeAlphabet, r) {
			return "", false
		}
	}
	return code, true
}

// FormatUserCode is how a user code is shown: XXXX-XXXX.
func FormatUserCode(code string) string {
	if len(code) != UserCodeLength {
		return code
	}
	return code[:4] + "-" + code[4:]
}

// Validate checks a device code's invariants before it is stored. EINVALID.
func (d DeviceCode) Validate() error {
	if n, ok := NormalizeUserCode(d.UserCode); !ok || n != d.UserCode {
		return apperr.Errorf(apperr.EINVALID, "Device code: the user code must be %d letters of %s", UserCodeLength, UserCodeAlphabet)
	}
	if d.Hash == "" || d.ClientID == "" || d.ExpiresAt.IsZero() || d.Interval <= 0 {
		return apperr.Errorf(apperr.EINVALID, "Device code: hash, client, expiry and interval are required")
	}
	switch d.Status {
	case DevicePending, DeviceDenied:
		if d.UserID != "" || d.Used {
			return apperr.Errorf(apperr.EINVALID, "Device code: only an approved code has a user and issues tokens")
		}
	case DeviceApproved:
		if d.UserID == "" {
			return apperr.Errorf(apperr.EINVALID, "Device code: an approved code names its user")
		}
	default:
		return apperr.Errorf(apperr.EINVALID, "Device code: status must be pending, approved or denied")
	}
	return nil
}

// CheckUpdate refuses next as the update of d when it changes what the device asked for, answers
// an answered code again, un-uses a used code, shortens the interval or breaks Validate: a poll
// only records its time (and a longer interval), an answer only sets the status once (with the
// person's sign-in when approved), a redemption only marks an approved code used.
func (d DeviceCode) CheckUpdate(next DeviceCode) error {
	bad := func(why string) error {
		return apperr.Errorf(apperr.EINVALID, "An update of a device code may not %s", why)
	}
	if next.Hash != d.Hash || next.UserCode != d.UserCode || next.ClientID != d.ClientID || !slices.Equal(next.Scopes, d.Scopes) ||
		next.Resource != d.Resource || !next.CreatedAt.Equal(d.CreatedAt) || !next.ExpiresAt.Equal(d.ExpiresAt) {
		return bad("change what the device asked for")
	}
	if next.Interval < d.Interval {
		return bad("shorten the interval")
	}
	if d.Status != DevicePending && !d.sameAnswer(next) {
		return bad("answer it again")
	}
	if d.Used && !next.Used {
		return bad("un-use it")
	}
	return next.Validate()
}

func (d DeviceCode) sameAnswer(o DeviceCode) bool {
	return d.Status == o.Status && d.UserID == o.UserID && d.SessionID == o.SessionID && d.Epoch == o.Epoch &&
		d.AuthTime.Equal(o.AuthTime) && slices.Equal(d.AMR, o.AMR) && d.IDP == o.IDP
}

// ApplyUpdate runs fn, the updater of UpdateDeviceCode, on a copy of d (as stored now) with lists
// of its own. keep says whether next is stored; when it is not, next is d as stored when fn
// refused (with fn's error), nothing when fn's result breaks d.CheckUpdate.
func (d DeviceCode) ApplyUpdate(fn func(DeviceCode) (DeviceCode, error)) (next DeviceCode, keep bool, err error) {
	given := d
	given.Scopes, given.AMR = slices.Clone(d.Scopes), slices.Clone(d.AMR)
	if next, err = fn(given); err != nil {
		return d, false, err
	}
	if err := d.CheckUpdate(next); err != nil {
		return DeviceCode{}, false, err
	}
	return next, true, nil
}

// DeviceCodeStore keeps device authorizations, by hash, with their user codes unique.
type DeviceCodeStore interface {
	// CreateDeviceCode stores d. EINVALID when d breaks DeviceCode.Validate; ECONFLICT when its
	// hash or its user code is taken (by any code still stored: pick another).
	CreateDeviceCode(ctx context.Context, d DeviceCode) error
	// DeviceCodeByUserCode returns the code with that (normalized) user code. ENOTFOUND.
	DeviceCodeByUserCode(ctx context.Context, userCode string) (DeviceCode, error)
	// UpdateDeviceCode runs fn on the code stored under hash and stores its result, in one
	// transaction, and returns what it stored; fn may run more than once. When fn returns an
	// error nothing changes and the code as stored is returned with that error. ENOTFOUND when
	// there is no such code (fn is not called); EINVALID when fn's result breaks CheckUpdate.
	UpdateDeviceCode(ctx context.Context, hash string, fn func(DeviceCode) (DeviceCode, error)) (DeviceCode, error)
	// DeleteDeadDeviceCodes removes the codes that expired before before, and their user codes,
	// and returns how many.
	DeleteDeadDeviceCodes(ctx context.Context, before time.Time) (int, error)
}
