package boltdb

import (
	"context"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

var (
	errNoDeviceCode    = apperr.Errorf(apperr.ENOTFOUND, "Device code not found")
	errDeviceCodeTaken = apperr.Errorf(apperr.ECONFLICT, "Device code already issued")
	errUserCodeTaken   = apperr.Errorf(apperr.ECONFLICT, "User code already taken")
)

// deviceCodes are kept by the device_code's hash; bucketUserCodes maps each user code to that
// hash, written and deleted with the code.
var deviceCodes = table[identity.DeviceCode]{bucket: bucketDeviceCodes, name: "device code", missing: errNoDeviceCode,
	hideKeys: true, taken: errDeviceCodeTaken,
	utc: func(d *identity.DeviceCode) {
		d.AuthTime, d.CreatedAt, d.ExpiresAt, d.LastPollAt = d.AuthTime.UTC(), d.CreatedAt.UTC(), d.ExpiresAt.UTC(), d.LastPollAt.UTC()
	}}

// CreateDeviceCode implements identity.DeviceCodeStore.
func (s *DB) CreateDeviceCode(ctx context.Context, d identity.DeviceCode) error {
	if err := d.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error {
		codes := tx.Bucket(bucketUserCodes)
		if codes.Get([]byte(d.UserCode)) != nil {
			return errUserCodeTaken
		}
		if err := deviceCodes.create(tx, d.Hash, d); err != nil {
			return err
		}
		return codes.Put([]byte(d.UserCode), []byte(d.Hash))
	})
}

// DeviceCodeByUserCode implements identity.DeviceCodeStore.
func (s *DB) DeviceCodeByUserCode(ctx context.Context, userCode string) (identity.DeviceCode, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.DeviceCode, error) {
		hash := tx.Bucket(bucketUserCodes).Get([]byte(userCode))
		if hash == nil {
			return identity.DeviceCode{}, errNoDeviceCode
		}
		return deviceCodes.get(tx, string(hash))
	})
}

// UpdateDeviceCode implements identity.DeviceCodeStore: bbolt's one writer at a time makes the
// read and the write one decision.
func (s *DB) UpdateDeviceCode(ctx context.Context, hash string, fn func(identity.DeviceCode) (identity.DeviceCode, error)) (identity.DeviceCode, error) {
	var out identity.DeviceCode
	var refused error
	err := s.write(ctx, func(tx *bolt.Tx) (err error) {
		out, refused, err = applyIn(tx, deviceCodes, hash, fn)
		return err
	})
	if err != nil {
		return identity.DeviceCode{}, err
	}
	return out, refused
}

// DeleteDeadDeviceCodes implements identity.DeviceCodeStore. Codes live ten minutes, so a walk
// of the bucket is short.
func (s *DB) DeleteDeadDeviceCodes(ctx context.Context, before time.Time) (int, error) {
	return deleteAll(s, deviceCodes, func(d identity.DeviceCode) bool { return d.ExpiresAt.Before(before) },
		func(tx *bolt.Tx, d identity.DeviceCode) error {
			if err := deviceCodes.delete(tx, d.Hash); err != nil {
				return err
			}
			return tx.Bucket(bucketUserCodes).Delete([]byte(d.UserCode))
		})
}
