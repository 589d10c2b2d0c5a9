package storetest

import (
	"errors"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// deviceCode is a pending device code of the client.
func deviceCode(hash, userCode, clientID string) identity.DeviceCode {
	return identity.DeviceCode{Hash: hash, UserCode: userCode, ClientID: clientID, Scopes: []string{"openid", "offline_access"},
		Status: identity.DevicePending, CreatedAt: t0, ExpiresAt: t0.Add(identity.DeviceCodeTTL), Interval: identity.DeviceInterval}
}

// getDeviceCode reads the code under hash through UpdateDeviceCode's updater, changing nothing.
func getDeviceCode(t *testing.T, s Store, hash string) identity.DeviceCode {
	t.Helper()
	var seen identity.DeviceCode
	got, err := s.UpdateDeviceCode(ctx, hash, func(d identity.DeviceCode) (identity.DeviceCode, error) {
		seen = d
		return identity.DeviceCode{}, errPeek
	})
	wantIs(t, "peek at device code "+hash, err, errPeek)
	equal(t, "the device code UpdateDeviceCode returns with fn's error", got, seen)
	return seen
}

// approve is an approval's updater: only a pending code may be answered.
func approve(userID string) func(identity.DeviceCode) (identity.DeviceCode, error) {
	return func(d identity.DeviceCode) (identity.DeviceCode, error) {
		if d.Status != identity.DevicePending {
			return d, errDeviceAnswered
		}
		d.Status, d.UserID, d.SessionID, d.Epoch, d.AuthTime, d.AMR = identity.DeviceApproved, userID, "s-"+userID, 2, t0, []string{"pwd"}
		return d, nil
	}
}

var errDeviceAnswered = errors.New("answered")

func testDeviceCodeRoundTrip(t *testing.T, s Store) {
	full := deviceCode("d1", "BCDFGHJK", "tv")
	full.Resource, full.CreatedAt, full.ExpiresAt = "https://api.example", full.CreatedAt.In(zone), full.ExpiresAt.In(zone)
	bare := identity.DeviceCode{Hash: "d2", UserCode: "LMNPQRST", ClientID: "cli", Status: identity.DevicePending,
		CreatedAt: t0, ExpiresAt: t0.Add(time.Minute), Interval: 7, AMR: []string{}}
	create(t, s.CreateDeviceCode, full, bare)
	want := full
	want.CreatedAt, want.ExpiresAt = full.CreatedAt.UTC(), full.ExpiresAt.UTC()
	equal(t, "a device code with every request field", getDeviceCode(t, s, "d1"), want)
	equal(t, "a bare device code", getDeviceCode(t, s, "d2"), bare)
	got, err := s.DeviceCodeByUserCode(ctx, "BCDFGHJK")
	check(t, err)
	equal(t, "a device code by its user code", got, want)
	_, err = s.DeviceCodeByUserCode(ctx, "ZZZZZZZZ")
	wantCode(t, "an unknown user code", err, apperr.ENOTFOUND)
	updateNothing(t, "UpdateDeviceCode of no code", s.UpdateDeviceCode, "nothing")

	// Approved and polled: the answer, the poll time and a longer interval read back.
	polled := t0.Add(3 * time.Second).In(zone)
	_, err = s.UpdateDeviceCode(ctx, "d1", func(d identity.DeviceCode) (identity.DeviceCode, error) {
		d, err := approve("u1")(d)
		d.LastPollAt, d.Interval, d.IDP = polled, 10, "corp"
		return d, err
	})
	check(t, err)
	want.Status, want.UserID, want.SessionID, want.Epoch, want.AuthTime, want.AMR = identity.DeviceApproved, "u1", "s-u1", 2, t0, []string{"pwd"}
	want.LastPollAt, want.Interval, want.IDP = polled.UTC(), 10, "corp"
	equal(t, "an approved, polled code", getDeviceCode(t, s, "d1"), want)
}

func testCreateDeviceCodeRefusals(t *testing.T, s Store) {
	create(t, s.CreateDeviceCode, deviceCode("d1", "BCDFGHJK", "tv"))
	wantCode(t, "a taken hash", s.CreateDeviceCode(ctx, deviceCode("d1", "LMNPQRST", "tv")), apperr.ECONFLICT)
	wantCode(t, "a taken user code", s.CreateDeviceCode(ctx, deviceCode("d2", "BCDFGHJK", "tv")), apperr.ECONFLICT)
	for name, d := range map[string]identity.DeviceCode{
		"a vowel in the user code": deviceCode("d3", "BCDFGHJA", "tv"),
		"a short user code":        deviceCode("d3", "BCDFGHJ", "tv"),
		"a dashed user code":       deviceCode("d3", "BCDF-GHJK", "tv"),
		"no client":                deviceCode("d3", "LMNPQRST", ""),
		"an unknown status":        func() identity.DeviceCode { d := deviceCode("d3", "LMNPQRST", "tv"); d.Status = "maybe"; return d }(),
		"approved without a user": func() identity.DeviceCode {
			d := deviceCode("d3", "LMNPQRST", "tv")
			d.Status = identity.DeviceApproved
			return d
		}(),
		"no interval":                func() identity.DeviceCode { d := deviceCode("d3", "LMNPQRST", "tv"); d.Interval = 0; return d }(),
		"pending with a user stored": func() identity.DeviceCode { d := deviceCode("d3", "LMNPQRST", "tv"); d.UserID = "u1"; return d }(),
	} {
		wantCode(t, name, s.CreateDeviceCode(ctx, d), apperr.EINVALID)
	}
	_, err := s.DeviceCodeByUserCode(ctx, "LMNPQRST")
	wantCode(t, "a refused code is not stored", err, apperr.ENOTFOUND)
}

func testUpdateDeviceCode(t *testing.T, s Store) {
	create(t, s.CreateDeviceCode, deviceCode("d1", "BCDFGHJK", "tv"))
	for name, fn := range map[string]func(identity.DeviceCode) identity.DeviceCode{
		"another client":       func(d identity.DeviceCode) identity.DeviceCode { d.ClientID = "evil"; return d },
		"wider scopes":         func(d identity.DeviceCode) identity.DeviceCode { d.Scopes = append(d.Scopes, "admin"); return d },
		"a later expiry":       func(d identity.DeviceCode) identity.DeviceCode { d.ExpiresAt = d.ExpiresAt.Add(time.Hour); return d },
		"a shorter interval":   func(d identity.DeviceCode) identity.DeviceCode { d.Interval = 1; return d },
		"another user code":    func(d identity.DeviceCode) identity.DeviceCode { d.UserCode = "LMNPQRST"; return d },
		"used while pending":   func(d identity.DeviceCode) identity.DeviceCode { d.Used = true; return d },
		"approved with no one": func(d identity.DeviceCode) identity.DeviceCode { d.Status = identity.DeviceApproved; return d },
	} {
		_, err := s.UpdateDeviceCode(ctx, "d1", func(d identity.DeviceCode) (identity.DeviceCode, error) { return fn(d), nil })
		wantCode(t, name, err, apperr.EINVALID)
	}
	equal(t, "refused updates change nothing", getDeviceCode(t, s, "d1"), deviceCode("d1", "BCDFGHJK", "tv"))

	// Denied: answered once, it cannot be approved after.
	_, err := s.UpdateDeviceCode(ctx, "d1", func(d identity.DeviceCode) (identity.DeviceCode, error) {
		d.Status = identity.DeviceDenied
		return d, nil
	})
	check(t, err)
	_, err = s.UpdateDeviceCode(ctx, "d1", func(d identity.DeviceCode) (identity.DeviceCode, error) {
		d.Status, d.UserID = identity.DeviceApproved, "u1"
		return d, nil
	})
	wantCode(t, "approving a denied code", err, apperr.EINVALID)

	// Approved and used: it cannot be un-used or handed to another user.
	create(t, s.CreateDeviceCode, deviceCode("d2", "LMNPQRST", "tv"))
	_, err = s.UpdateDeviceCode(ctx, "d2", func(d identity.DeviceCode) (identity.DeviceCode, error) {
		d, err := approve("u1")(d)
		d.Used = true
		return d, err
	})
	check(t, err)
	for name, fn := range map[string]func(identity.DeviceCode) identity.DeviceCode{
		"un-used":      func(d identity.DeviceCode) identity.DeviceCode { d.Used = false; return d },
		"another user": func(d identity.DeviceCode) identity.DeviceCode { d.UserID = "u2"; return d },
		"denied after": func(d identity.DeviceCode) identity.DeviceCode {
			d.Status, d.UserID = identity.DeviceDenied, ""
			return d
		},
		"another sessio": func(d identity.DeviceCode) identity.DeviceCode { d.SessionID = "s-x"; return d },
	} {
		_, err := s.UpdateDeviceCode(ctx, "d2", func(d identity.DeviceCode) (identity.DeviceCode, error) { return fn(d), nil })
		wantCode(t, name, err, apperr.EINVALID)
	}
	// A poll of a used code may still record its time.
	_, err = s.UpdateDeviceCode(ctx, "d2", func(d identity.DeviceCode) (identity.DeviceCode, error) {
		d.LastPollAt = t0.Add(time.Minute)
		return d, nil
	})
	check(t, err)
}

func testConcurrentApproveOneWinner(t *testing.T, s Store) {
	create(t, s.CreateDeviceCode, deviceCode("d1", "BCDFGHJK", "tv"))
	oneWinner(t, "approval", 10, errDeviceAnswered, func(i int, slow func(func(identity.DeviceCode) (identity.DeviceCode, error)) func(identity.DeviceCode) (identity.DeviceCode, error)) error {
		_, err := s.UpdateDeviceCode(ctx, "d1", slow(approve("u"+string(rune('0'+i)))))
		return err
	})
}

func testDeleteDeadDeviceCodes(t *testing.T, s Store) {
	old := deviceCode("d1", "BCDFGHJK", "tv")
	old.ExpiresAt = t0.Add(-time.Second)
	create(t, s.CreateDeviceCode, old, deviceCode("d2", "LMNPQRST", "tv"))
	n, err := s.DeleteDeadDeviceCodes(ctx, t0)
	check(t, err)
	if n != 1 {
		t.Fatalf("deleted %d device codes, want 1", n)
	}
	updateNothing(t, "the dead code", s.UpdateDeviceCode, "d1")
	_, err = s.DeviceCodeByUserCode(ctx, "BCDFGHJK")
	wantCode(t, "the dead code's user code", err, apperr.ENOTFOUND)
	getDeviceCode(t, s, "d2")
	// Its user code is free again.
	create(t, s.CreateDeviceCode, deviceCode("d3", "BCDFGHJK", "tv"))
}
