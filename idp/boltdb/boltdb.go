// Package boltdb keeps the IdP's users, signing keys, refresh-token families, browser sessions,
// secrets, registered OAuth clients, authorization codes, consents, groups, the audit trail,
// the mail outbox and the links to upstream identities in one bbolt file. Every
// read-modify-write is one transaction; slow work (hashing, key generation) is done by callers
// before they get here.
package boltdb

import (
	"time"

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
	bucketTokens    = []byte("tokens")       // refresh-token hash → family id [NUL previous hash] (families.go)
	bucketFamTokens = []byte("famtokens")    // family id → (token hash → nil): before the chain, every hash; since, those a set-back left out of it
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
	bucketAuthReqs = []byte("authrequests") // authorization-request id → AuthRequest
	bucketGroups   = []byte("groups")       // group name → Group
	// group name → (member's user id → nil), and user id → (group name → nil): one membership
	// in both, written together.
	bucketGroupMembers = []byte("groupmembers")
	bucketUserGroups   = []byte("usergroups")
	bucketLinks        = []byte("links")      // link id → Link
	bucketLinkHashes   = []byte("linkhashes") // hash of a link's token → link id
	bucketOutbox       = []byte("outbox")     // mail id → Mail
	// CreatedAt (UTC, fixed width) + " " + mail id → mail id: the outbox oldest first.
	bucketOutboxOrder = []byte("outboxorder")
	// connector + "\x00" + upstream subject → Federation, and user id → (that key → nil).
	bucketFederations = []byte("federations")
	bucketUserFeds    = []byte("userfeds")
	bucketDeviceCodes = []byte("devicecodes") // device_code hash → DeviceCode (issue 30)
	bucketUserCodes   = []byte("usercodes")   // user code → device_code hash
	// client id + "\x00" + jti → UsedAssertion, until the assertion expires.
	bucketAssertions = []byte("assertions")
	// hash of an initial access token (RFC 7591) → RegistrationToken.
	bucketRegTokens = []byte("registrationtokens")
)

// DB is the bbolt-backed store: an identity.Store. Every write method writes the audit events
// and the mail of its context in its own transaction (write, batch).
type DB struct {
	boltfile.Store
	path string
}

var _ identity.Store = (*DB)(nil)

// Open opens (creating if needed) the store in dir. The folder is made 0700 and the file 0600.
// A second process on the same folder gets an error naming the folder after lockTimeout
// instead of waiting forever.
func Open(dir string, lockTimeout time.Duration) (*DB, error) {
	db, err := boltfile.Open(dir, FileName, lockTimeout, bucketUsers, bucketUsernames, bucketKeys, bucketFamilies, bucketTokens, bucketFamTokens, bucketUserFams,
		bucketSessions, bucketSessToks, bucketUserSess, bucketSecrets, bucketClients, bucketEmails, bucketCodes, bucketConsents, bucketDeleted, bucketAudit,
		bucketCodeFails, bucketReserved, bucketAuthReqs, bucketGroups, bucketGroupMembers, bucketUserGroups,
		bucketLinks, bucketLinkHashes, bucketOutbox, bucketOutboxOrder, bucketFederations, bucketUserFeds, bucketDeviceCodes, bucketUserCodes, bucketAssertions,
		bucketRegTokens)
	if err != nil {
		return nil, err
	}
	return &DB{Store: boltfile.NewStore(db), path: db.Path()}, nil
}

// Path is the bbolt file's path.
func (s *DB) Path() string { return s.path }
