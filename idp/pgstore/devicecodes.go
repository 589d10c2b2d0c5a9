package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var errNoDeviceCode = apperr.Errorf(apperr.ENOTFOUND, "Device code not found")

const deviceCols = `hash, user_code, client_id, scopes, resource, status, user_id, session_id, epoch, auth_time, amr, idp,
	created_at, expires_at, interval_s, last_poll_at, used`

func scanDeviceCode(row pgx.Row) (identity.DeviceCode, error) {
	var d identity.DeviceCode
	var authTime, lastPoll *time.Time
	err := row.Scan(&d.Hash, &d.UserCode, &d.ClientID, &d.Scopes, &d.Resource, &d.Status, &d.UserID, &d.SessionID, &d.Epoch,
		&authTime, &d.AMR, &d.IDP, &d.CreatedAt, &d.ExpiresAt, &d.Interval, &lastPoll, &d.Used)
	if authTime != nil {
		d.AuthTime = authTime.UTC()
	}
	if lastPoll != nil {
		d.LastPollAt = lastPoll.UTC()
	}
	d.CreatedAt, d.ExpiresAt = d.CreatedAt.UTC(), d.ExpiresAt.UTC()
	return found(d, err, errNoDeviceCode)
}

// storedDeviceCode is d as it is written and as every later read sees it.
func storedDeviceCode(d identity.DeviceCode) identity.DeviceCode {
	d.ClientID, d.Resource, d.SessionID, d.IDP = text(d.ClientID), text(d.Resource), text(d.SessionID), text(d.IDP)
	d.Scopes, d.AMR = texts(d.Scopes), texts(d.AMR)
	d.CreatedAt, d.ExpiresAt = ts(d.CreatedAt), ts(d.ExpiresAt)
	if !d.AuthTime.IsZero() {
		d.AuthTime = ts(d.AuthTime)
	}
	if !d.LastPollAt.IsZero() {
		d.LastPollAt = ts(d.LastPollAt)
	}
	return d
}

func deviceArgs(d identity.DeviceCode) []any {
	return []any{d.Hash, d.UserCode, d.ClientID, d.Scopes, d.Resource, d.Status, d.UserID, d.SessionID, d.Epoch,
		nullTime(d.AuthTime), d.AMR, d.IDP, d.CreatedAt, d.ExpiresAt, d.Interval, nullTime(d.LastPollAt), d.Used}
}

// CreateDeviceCode implements identity.DeviceCodeStore.
func (s *DB) CreateDeviceCode(ctx context.Context, d identity.DeviceCode) error {
	if err := d.Validate(); err != nil {
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO device_codes (`+deviceCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`, deviceArgs(storedDeviceCode(d))...)
	return s.fail(conflict(err))
}

// DeviceCodeByUserCode implements identity.DeviceCodeStore.
func (s *DB) DeviceCodeByUserCode(ctx context.Context, userCode string) (identity.DeviceCode, error) {
	return getRow(ctx, s, userCode, errNoDeviceCode, scanDeviceCode, `SELECT `+deviceCols+` FROM device_codes WHERE user_code = $1`)
}

// UpdateDeviceCode implements identity.DeviceCodeStore: the row is locked FOR UPDATE as it is
// read, so of two polls (or answers) of one code the second waits and sees the first's.
func (s *DB) UpdateDeviceCode(ctx context.Context, hash string, fn func(identity.DeviceCode) (identity.DeviceCode, error)) (identity.DeviceCode, error) {
	return updateRow(ctx, s, hash, errNoDeviceCode, `SELECT `+deviceCols+` FROM device_codes WHERE hash = $1 FOR UPDATE`, scanDeviceCode,
		func(stored identity.DeviceCode) (identity.DeviceCode, bool, error) { return stored.ApplyUpdate(fn) },
		func(tx pgx.Tx, d identity.DeviceCode) (identity.DeviceCode, error) {
			d = storedDeviceCode(d)
			// CheckUpdate allowed nothing else to change.
			_, err := tx.Exec(ctx, `UPDATE device_codes SET status = $2, user_id = $3, session_id = $4, epoch = $5, auth_time = $6,
				amr = $7, idp = $8, interval_s = $9, last_poll_at = $10, used = $11 WHERE hash = $1`,
				d.Hash, d.Status, d.UserID, d.SessionID, d.Epoch, nullTime(d.AuthTime), d.AMR, d.IDP, d.Interval, nullTime(d.LastPollAt), d.Used)
			return d, err
		})
}

// DeleteDeadDeviceCodes implements identity.DeviceCodeStore, in batches as DeleteDeadCodes.
func (s *DB) DeleteDeadDeviceCodes(ctx context.Context, before time.Time) (int, error) {
	return s.collect(ctx, `DELETE FROM device_codes WHERE hash IN (
		SELECT hash FROM device_codes WHERE expires_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, before)
}
