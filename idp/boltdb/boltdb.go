// Package boltdb keeps the IdP's users, signing keys, refresh-token families, browser sessions,
// secrets, registered OAuth clients, authorization codes and consents in one bbolt file. Every
// read-modify-write is one transaction; slow work (hashing, key generation) is done by callers
// before they get here.
package boltdb

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
	"jwtidp/shared/boltfile"
)

// FileName is the bbolt file inside the data folder.
const FileName = "idp.db"

var (
	bucketUsers     = []byte("users")        // id → User
	bucketUsernames = []byte("usernames")    // normalized username → id
	bucketKeys      = []byte("keys")         // kid → SigningKey
	bucketFamilies  = []byte("families")     // family id → Family
	bucketTokens    = []byte("tokens")       // refresh-token hash → family id
	bucketFamTokens = []byte("famtokens")    // family id → (token hash → nil), for deletion
	bucketUserFams  = []byte("userfams")     // user id → (family id → nil)
	bucketSessions  = []byte("sessions")     // session id → Session
	bucketSessToks  = []byte("sesstoks")     // session token hash → session id
	bucketUserSess  = []byte("usersess")     // user id → (session id → nil)
	bucketSecrets   = []byte("secrets")      // name → the IdP's own secret bytes
	bucketClients   = []byte("clients")      // client id → Client
	bucketEmails    = []byte("emails")       // normalized email → user id, for users who have one
	bucketCodes     = []byte("codes")        // authorization-code hash → AuthCode
	bucketConsents  = []byte("consents")     // user id → (client id → Consent)
	bucketDeleted   = []byte("deletedusers") // id of a deleted user → 1: never an id again
	bucketAudit     = []byte("audit")        // big-endian uint64 id (NextSequence) → AuditEvent
	bucketCodeFails = []byte("codefailures") // user id → ThrottleCounter of refused one-time codes
	// normalized username of a deleted user → ReservedName, until an admin releases it; the
	// deleted user's email stays in bucketEmails under their id meanwhile.
	bucketReserved = []byte("reservednames")
)

// DB is the bbolt-backed store. It implements identity.UserStore, identity.KeyStore,
// identity.FamilyStore, identity.SessionStore, identity.SecretStore, identity.ClientStore,
// identity.CodeStore, identity.ConsentStore, identity.AuditStore and identity.CodeFailureStore. Every write method writes
// the audit events of its context in its own transaction (write, batch).
type DB struct {
	boltfile.Store
	path string
}

var (
	_ identity.UserStore    = (*DB)(nil)
	_ identity.KeyStore     = (*DB)(nil)
	_ identity.FamilyStore  = (*DB)(nil)
	_ identity.SessionStore = (*DB)(nil)
	_ identity.SecretStore  = (*DB)(nil)
	_ identity.ClientStore  = (*DB)(nil)
	_ identity.CodeStore    = (*DB)(nil)
	_ identity.ConsentStore = (*DB)(nil)

	_ identity.CodeFailureStore = (*DB)(nil)
)

// Open opens (creating if needed) the store in dir. The folder is made 0700 and the file 0600.
// A second process on the same folder gets an error naming the folder after lockTimeout
// instead of waiting forever.
func Open(dir string, lockTimeout time.Duration) (*DB, error) {
	db, err := boltfile.Open(dir, FileName, lockTimeout, bucketUsers, bucketUsernames, bucketKeys, bucketFamilies, bucketTokens, bucketFamTokens, bucketUserFams,
		bucketSessions, bucketSessToks, bucketUserSess, bucketSecrets, bucketClients, bucketEmails, bucketCodes, bucketConsents, bucketDeleted, bucketAudit,
		bucketCodeFails, bucketReserved)
	if err != nil {
		return nil, err
	}
	return &DB{Store: boltfile.NewStore(db), path: db.Path()}, nil
}

// Path is the bbolt file's path.
func (s *DB) Path() string { return s.path }

func put(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// get decodes the value at key into v; json.Unmarshal copies, so v outlives the transaction.
func get(b *bolt.Bucket, key string, v any) (bool, error) {
	data := b.Get([]byte(key))
	if data == nil {
		return false, nil
	}
	return true, json.Unmarshal(data, v)
}

// index adds key to the nested bucket name of parent (a set: user → its families, say).
func index(parent *bolt.Bucket, name, key string) error {
	b, err := parent.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return err
	}
	return b.Put([]byte(key), nil)
}

// members lists the keys of the nested bucket name of parent.
func members(parent *bolt.Bucket, name string) ([]string, error) {
	var out []string
	b := parent.Bucket([]byte(name))
	if b == nil {
		return nil, nil
	}
	err := b.ForEach(func(k, _ []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out, err
}
