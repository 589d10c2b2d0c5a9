package keys

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"jwtidp/idp/identity"
	"jwtidp/idp/seal"
	"jwtidp/idp/sign"
)

// Options configure a Manager.
type Options struct {
	Bits   int // RSA modulus size: 2048, 3072 or 4096
	Policy Policy
	Now    func() time.Time
	// After waits for the schedule (time.After when nil); with Now it is the clock Run reads,
	// so a test can advance a fake one.
	After  func(time.Duration) <-chan time.Time
	Random io.Reader
	Logger *slog.Logger
	// Sealer encrypts the private keys in the store (nil: seal.None, stored as plain DER). The
	// stored keys open with it, plain ones too, and New reseals those it says need it.
	Sealer seal.Sealer
	// Audit records rotations and revocations in the audit trail; the zero value records none.
	Audit Audit
	// Backend signs with the current key (nil: sign.Go; the IdP passes the one sign.Choose chose).
	Backend sign.Backend
}

// Audit is how the manager records its changes: Event makes the event of one (of type typ),
// written with the change in its transaction; Log logs the events once they are stored.
type Audit struct {
	Event func(ctx context.Context, typ, detail string) identity.AuditEvent
	Log   func(ctx context.Context, events ...identity.AuditEvent)
}

// event is the audit event of ch, made inside the transaction: a rotation (the current key
// changed) or a revocation; nil for a change that is neither (a retired key deleted on time).
func (m *Manager) event(ctx context.Context, ch change, revoked string) []identity.AuditEvent {
	switch {
	case m.opt.Audit.Event == nil:
		return nil
	case revoked != "":
		return []identity.AuditEvent{m.opt.Audit.Event(ctx, identity.AuditKeyRevoked, "signing key "+revoked+" revoked and unpublished")}
	case ch.from == "" && ch.to != "":
		return []identity.AuditEvent{m.opt.Audit.Event(ctx, identity.AuditKeyRotated, "first signing key "+ch.to)}
	case ch.from != ch.to:
		return []identity.AuditEvent{m.opt.Audit.Event(ctx, identity.AuditKeyRotated, "current signing key "+ch.from+" → "+ch.to)}
	}
	return nil
}

// Manager holds the signing keys in memory as a snapshot that is replaced whole at each change,
// so the hot paths (signing, serving the JWKS, checking a kid) take no lock and parse nothing.
type Manager struct {
	store   identity.KeyStore
	opt     Options
	snap    atomic.Pointer[snapshot]
	gen     atomic.Uint64
	changed chan struct{}
	// reloading serializes reload: read, parse and store the snapshot as one step. It guards
	// no hot path (signing and lookups read the snapshot without it).
	reloading sync.Mutex
}

// Generation changes whenever the key set does.
func (m *Manager) Generation() uint64 { return m.gen.Load() }

type snapshot struct {
	keys   []identity.SigningKey // without private parts
	kid    string
	key    sign.Key // the current key, loaded into the backend: the handle of the one key that signs
	public map[string]*rsa.PublicKey
	jwks   []byte
	etag   string
}

// New loads the stored keys and makes the missing ones (a current and a next key on the first
// start).
func New(ctx context.Context, store identity.KeyStore, opt Options) (*Manager, error) {
	if err := checkBits(opt.Bits); err != nil {
		return nil, err
	}
	if opt.After == nil {
		opt.After = time.After
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	opt.Sealer = seal.Or(opt.Sealer)
	if opt.Backend == nil {
		opt.Backend = sign.Go
	}
	m := &Manager{store: store, opt: opt, changed: make(chan struct{}, 1)}
	if err := m.reseal(ctx); err != nil {
		return nil, err
	}
	if _, err := m.apply(ctx, Ensure, ""); err != nil {
		return nil, err
	}
	return m, nil
}

type updater func([]identity.SigningKey, time.Time, Policy, *pool) ([]identity.SigningKey, error)

// errUnchanged aborts a transaction whose updater changed nothing, so that nothing is written.
var errUnchanged = errors.New("keys: nothing to change")

// change is what a committed update did to the current key: its kid before and after; zero
// when nothing was written.
type change struct{ from, to string }

// apply runs up under the store's transaction with freshly generated keys ready for it. It
// first learns, without a transaction, how many fresh keys the update needs, so a start on a
// store in order generates none; if the set changed meanwhile and needs more, it tries again.
// An update that changes nothing writes nothing.
//
// Its audit event (Manager.event; revoked names the kid a revocation removes) is written in the
// transaction of the change.
func (m *Manager) apply(ctx context.Context, up updater, revoked string) (change, error) {
	current, err := m.store.Keys(ctx)
	if err != nil {
		return change{}, fmt.Errorf("read signing keys: %w", err)
	}
	need := 0
	now := m.opt.Now()
	for ; need < 4; need++ {
		next, err := up(slices.Clone(current), now, m.opt.Policy, &pool{fresh: make([]identity.SigningKey, need)})
		if errors.Is(err, errNeedKey) {
			continue
		}
		if err == nil && need == 0 && sameKeys(current, next) {
			// Nothing to change (every start on a store in order): no write, no fsync.
			return change{}, m.reload(ctx)
		}
		break
	}
	for attempt := 0; attempt < 3; attempt++ {
		fresh := make([]identity.SigningKey, need)
		for i := range fresh {
			if fresh[i], err = m.generate(); err != nil {
				return change{}, err
			}
		}
		now := m.opt.Now()
		var ch change
		var events []identity.AuditEvent
		audited := identity.WithAudit(ctx, func() []identity.AuditEvent { return events })
		err = m.store.UpdateKeys(audited, func(keys []identity.SigningKey) ([]identity.SigningKey, error) {
			events = nil
			next, err := up(slices.Clone(keys), now, m.opt.Policy, &pool{fresh: slices.Clone(fresh)})
			if err != nil {
				return nil, err
			}
			if sameKeys(keys, next) {
				// Another process got there first (it rotated for this due date, say).
				return nil, errUnchanged
			}
			ch = change{from: kidIn(keys, identity.KeyCurrent), to: kidIn(next, identity.KeyCurrent)}
			events = m.event(ctx, ch, revoked)
			return next, nil
		})
		if errors.Is(err, errNeedKey) {
			need++
			continue
		}
		if errors.Is(err, errUnchanged) {
			return change{}, m.reload(ctx)
		}
		if err != nil {
			return change{}, fmt.Errorf("update signing keys: %w", err)
		}
		if m.opt.Audit.Log != nil {
			m.opt.Audit.Log(ctx, events...)
		}
		return ch, m.reload(ctx)
	}
	return change{}, fmt.Errorf("update signing keys: the key set kept changing")
}

func kidIn(keys []identity.SigningKey, s identity.KeyState) string {
	if i := find(keys, s); i >= 0 {
		return keys[i].ID
	}
	return ""
}

// sameKeys reports whether two key sets have the same keys in the same states and schedule.
func sameKeys(a, b []identity.SigningKey) bool {
	if len(a) != len(b) {
		return false
	}
	byID := map[string]identity.SigningKey{}
	for _, k := range a {
		byID[k.ID] = k
	}
	for _, k := range b {
		o, ok := byID[k.ID]
		if !ok || o.State != k.State || !o.SignsFrom.Equal(k.SignsFrom) || !o.DeleteAt.Equal(k.DeleteAt) || !o.RetiredAt.Equal(k.RetiredAt) {
			return false
		}
	}
	return true
}

func (m *Manager) generate() (identity.SigningKey, error) {
	priv, err := rsa.GenerateKey(m.opt.Random, m.opt.Bits)
	if err != nil {
		return identity.SigningKey{}, fmt.Errorf("generate RSA key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return identity.SigningKey{}, err
	}
	// The kid is the RFC 7638 thumbprint: stable, unique and free of meaning.
	tp, err := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return identity.SigningKey{}, err
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	sealed, err := m.opt.Sealer.Seal(der, sealedAs(kid))
	if err != nil {
		return identity.SigningKey{}, fmt.Errorf("seal signing key %s: %w", kid, err)
	}
	return identity.SigningKey{ID: kid, PrivateDER: sealed}, nil
}

// sealedAs is the associated data a key's private part is sealed with: it binds the sealed bytes
// to the kid, so they do not open as another key's.
func sealedAs(kid string) []byte { return []byte("signing-key:" + kid) }

// reseal seals again, in one transaction, every stored private key the sealer says needs it:
// those stored plain before a secrets key was configured, and those sealed with a secrets key
// that is no longer the first of the file. This is the secrets key's rotation: once every key is
// sealed with the new one, the old one can leave the file.
func (m *Manager) reseal(ctx context.Context) error {
	stored, err := m.store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("read signing keys: %w", err)
	}
	needs := func(k identity.SigningKey) bool { return m.opt.Sealer.NeedsReseal(k.PrivateDER) }
	if !slices.ContainsFunc(stored, needs) {
		return nil // every start once done: one read, no write
	}
	n := 0
	err = m.store.UpdateKeys(ctx, func(keys []identity.SigningKey) ([]identity.SigningKey, error) {
		keys, n = slices.Clone(keys), 0
		for i, k := range keys {
			out, changed, err := seal.Reseal(m.opt.Sealer, k.PrivateDER, sealedAs(k.ID))
			if err != nil {
				return nil, fmt.Errorf("signing key %s: %w", k.ID, err)
			}
			if changed {
				keys[i].PrivateDER, n = out, n+1
			}
		}
		if n == 0 {
			return nil, errUnchanged // another process resealed them first
		}
		return keys, nil
	})
	if errors.Is(err, errUnchanged) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reseal signing keys: %w", err)
	}
	m.opt.Logger.Info("signing keys resealed with the first secrets key", "keys", n)
	return nil
}

// reload rebuilds the snapshot from the store: parsed keys, the JWKS bytes and their ETag.
func (m *Manager) reload(ctx context.Context) (err error) {
	// One reload at a time, so that a slower one of an older read (Follow's poll racing a
	// local rotation or revocation) cannot store its snapshot last.
	m.reloading.Lock()
	defer m.reloading.Unlock()
	var loaded sign.Key // a handle this reload made: closed if it fails before the swap
	defer func() {
		if err != nil && loaded != nil {
			loaded.Close()
		}
	}()
	keys, err := m.store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("read signing keys: %w", err)
	}
	// Current first, then next, then retired, newest first: a stable order for a stable ETag.
	rank := map[identity.KeyState]int{identity.KeyCurrent: 0, identity.KeyNext: 1, identity.KeyRetired: 2}
	slices.SortFunc(keys, func(a, b identity.SigningKey) int {
		if rank[a.State] != rank[b.State] {
			return rank[a.State] - rank[b.State]
		}
		return b.CreatedAt.Compare(a.CreatedAt)
	})
	s := &snapshot{public: map[string]*rsa.PublicKey{}}
	var set jose.JSONWebKeySet
	for _, k := range keys {
		der, err := m.opt.Sealer.Open(k.PrivateDER, sealedAs(k.ID))
		if err != nil {
			return fmt.Errorf("open signing key %s: %w", k.ID, err)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("parse signing key %s: %w", k.ID, err)
		}
		priv, ok := parsed.(*rsa.PrivateKey)
		if !ok {
			return fmt.Errorf("signing key %s is not RSA", k.ID)
		}
		if k.State == identity.KeyCurrent {
			s.kid = k.ID
			if old := m.snap.Load(); old != nil && old.kid == k.ID {
				s.key = old.key // the same key: its handle carries over
			} else if s.key, err = m.opt.Backend.Load(priv, der); err != nil {
				return fmt.Errorf("load signing key %s into the %s signer: %w", k.ID, m.opt.Backend.Name(), err)
			} else {
				loaded = s.key
			}
		}
		s.public[k.ID] = &priv.PublicKey
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &priv.PublicKey, KeyID: k.ID, Algorithm: "RS256", Use: "sig"})
		k.PrivateDER = nil
		s.keys = append(s.keys, k)
	}
	if s.key == nil {
		return errors.New("no current signing key")
	}
	if s.jwks, err = json.Marshal(set); err != nil {
		return err
	}
	sum := sha256.Sum256(s.jwks)
	s.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	if old := m.snap.Swap(s); old != nil && old.key != s.key {
		// The key stopped signing (a rotation, a revocation): its handle goes. A signature in
		// flight with it finishes first; one that fetched it and has not started gets
		// sign.ErrClosed and takes the new one (SigningKey's callers retry).
		old.key.Close()
	}
	m.gen.Add(1)
	select {
	case m.changed <- struct{}{}:
	default:
	}
	return nil
}

// CurrentKID is the kid of the key that signs now. The private key itself stays in the signing
// backend (SigningKey): the snapshot keeps no second copy of it.
func (m *Manager) CurrentKID() string { return m.snap.Load().kid }

// SigningKey returns the current key's kid and its handle in the signing backend. The handle
// may be closed by a rotation at any moment: a Sign that answers sign.ErrClosed is retried with
// the key SigningKey returns then.
func (m *Manager) SigningKey() (string, sign.Key) {
	s := m.snap.Load()
	return s.kid, s.key
}

// SignerName is the signing backend's name ("go", "openssl"), for the log and /metrics.
func (m *Manager) SignerName() string { return m.opt.Backend.Name() }

// PublicKey returns the published key with the given kid.
func (m *Manager) PublicKey(kid string) (*rsa.PublicKey, bool) {
	k, ok := m.snap.Load().public[kid]
	return k, ok
}

// JWKS returns the prepared JWKS document and its ETag. The caller must not modify the bytes.
func (m *Manager) JWKS() ([]byte, string) {
	s := m.snap.Load()
	return s.jwks, s.etag
}

// Keys lists the keys without their private parts, current first.
func (m *Manager) Keys() []identity.SigningKey {
	return slices.Clone(m.snap.Load().keys)
}

// Policy is the policy the manager runs.
func (m *Manager) Policy() Policy { return m.opt.Policy }

// Rotate promotes the next key, retires the current one and makes a new next key, whether or
// not a rotation is due: the admin's explicit rotation. The schedule uses Tick.
func (m *Manager) Rotate(ctx context.Context) error {
	ch, err := m.apply(ctx, Rotate, "")
	if err != nil {
		return err
	}
	m.opt.Logger.Info("signing keys rotated", "from_kid", ch.from, "to_kid", ch.to)
	return nil
}

// Tick is one step of the schedule: it rotates if the stored keys are due for a rotation and
// deletes the retired keys whose time has come. The decision is taken inside the store's
// transaction (RotateIfDue), so processes sharing the store, or a Tick just after an admin
// rotation, rotate once per due date.
func (m *Manager) Tick(ctx context.Context) error {
	ch, err := m.apply(ctx, RotateIfDue, "")
	if err != nil {
		return err
	}
	if ch.from != ch.to {
		m.opt.Logger.Info("signing keys rotated on schedule", "from_kid", ch.from, "to_kid", ch.to)
	}
	return nil
}

// Revoke removes the key kid at once, for a compromised key (see the Revoke updater): it leaves
// this process's JWKS and key lookups now. An unknown kid is ENOTFOUND.
func (m *Manager) Revoke(ctx context.Context, kid string) error {
	if _, err := m.apply(ctx, Revoke(kid), kid); err != nil {
		return err
	}
	m.opt.Logger.Warn("signing key revoked", "kid", kid)
	return nil
}

// Run rotates on the schedule and deletes retired keys when their time comes, until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		wait := time.Hour
		if t := NextEvent(m.snap.Load().keys, m.opt.Policy); !t.IsZero() {
			wait = max(t.Sub(m.opt.Now()), 0)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.changed:
			continue
		case <-m.opt.After(wait):
		}
		if err := m.Tick(ctx); err != nil && ctx.Err() == nil {
			m.opt.Logger.Error("key schedule", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-m.opt.After(time.Minute):
			}
		}
	}
}
