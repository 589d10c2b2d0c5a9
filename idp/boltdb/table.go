package boltdb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"jwtidp/shared/apperr"
)

// table is a bucket of one entity: under each key, the JSON of one T. Its methods are the reads
// and writes every entity shares; an entity's file declares its table and adds what is its own
// (its indexes, its rules).
type table[T any] struct {
	bucket []byte
	name   string // what a value is, in errors: "user"
	// missing is what get answers for a key without a value: the entity's ENOTFOUND, or nil
	// when an absent value reads as the zero T (a counter).
	missing error
	taken   error // what create answers for a key with a value: the entity's ECONFLICT
	// hideKeys keeps the keys out of errors: they are hashes of secrets.
	hideKeys bool
	// utc puts a decoded value's times in UTC: JSON keeps the offset each was written with.
	utc func(*T)
	// encode and decode replace the JSON of T, for an entity stored in another shape.
	encode func(T) ([]byte, error)
	decode func([]byte) (T, error)
}

func (t table[T]) marshal(v T) ([]byte, error) {
	if t.encode != nil {
		return t.encode(v)
	}
	return json.Marshal(v)
}

// unmarshal decodes a stored value; json.Unmarshal copies, so it outlives the transaction.
func (t table[T]) unmarshal(key []byte, data []byte) (T, error) {
	var v T
	var err error
	if t.decode != nil {
		v, err = t.decode(data)
	} else if err = json.Unmarshal(data, &v); t.utc != nil {
		t.utc(&v)
	}
	if err != nil {
		if t.hideKeys {
			return v, fmt.Errorf("read %s: %w", t.name, err)
		}
		return v, fmt.Errorf("read %s %s: %w", t.name, key, err)
	}
	return v, nil
}

// get reads the value at key: t.missing when there is none.
func (t table[T]) get(tx *bolt.Tx, key string) (T, error) { return t.getIn(tx.Bucket(t.bucket), key) }

// getIn is get from b, a nested bucket of t's values (nil: none).
func (t table[T]) getIn(b *bolt.Bucket, key string) (T, error) {
	var data []byte
	if b != nil {
		data = b.Get([]byte(key))
	}
	if data == nil {
		var zero T
		return zero, t.missing
	}
	return t.unmarshal([]byte(key), data)
}

// exists is nil when key has a value, else t.missing.
func (t table[T]) exists(tx *bolt.Tx, key string) error {
	if tx.Bucket(t.bucket).Get([]byte(key)) == nil {
		return t.missing
	}
	return nil
}

// put stores v at key.
func (t table[T]) put(tx *bolt.Tx, key string, v T) error {
	return t.putIn(tx.Bucket(t.bucket), key, v)
}

// putIn is put into b, a nested bucket of t's values.
func (t table[T]) putIn(b *bolt.Bucket, key string, v T) error {
	data, err := t.marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// store puts v at key and returns it as every later read sees it.
func (t table[T]) store(tx *bolt.Tx, key string, v T) (T, error) {
	if err := t.put(tx, key, v); err != nil {
		return v, err
	}
	return t.get(tx, key)
}

// create puts v at a key that has no value: t.taken when it has one.
func (t table[T]) create(tx *bolt.Tx, key string, v T) error {
	if tx.Bucket(t.bucket).Get([]byte(key)) != nil {
		return t.taken
	}
	return t.put(tx, key, v)
}

// update stores what change makes of the value at key and returns that as every later read
// sees it. t.missing when there is none (change is not called); change's error stores nothing.
func (t table[T]) update(tx *bolt.Tx, key string, change func(T) (T, error)) (T, error) {
	old, err := t.get(tx, key)
	if err != nil {
		return old, err
	}
	v, err := change(old)
	if err != nil {
		return v, err
	}
	return t.store(tx, key, v)
}

// delete removes the value at key, if any.
func (t table[T]) delete(tx *bolt.Tx, key string) error {
	return tx.Bucket(t.bucket).Delete([]byte(key))
}

// eachIn calls fn with every key and value of b (nil: none) in key order; fn must not change b.
func (t table[T]) eachIn(b *bolt.Bucket, fn func(key []byte, v T) error) error {
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, data []byte) error {
		v, err := t.unmarshal(k, data)
		if err != nil {
			return err
		}
		return fn(k, v)
	})
}

// list reads every value, in key order: empty, never nil.
func (t table[T]) list(tx *bolt.Tx) ([]T, error) { return t.listIn(tx.Bucket(t.bucket)) }

// listIn is list of b, a nested bucket of t's values (nil: none).
func (t table[T]) listIn(b *bolt.Bucket) ([]T, error) {
	return t.where(b, func(T) bool { return true })
}

// where reads the values of b (nil: none) match is true for, in key order: empty, never nil.
func (t table[T]) where(b *bolt.Bucket, match func(T) bool) ([]T, error) {
	out := []T{}
	err := t.eachIn(b, func(_ []byte, v T) error {
		if match(v) {
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deleteWhere removes the values dead is true for and returns how many.
func (t table[T]) deleteWhere(tx *bolt.Tx, dead func(T) bool) (int, error) {
	b := tx.Bucket(t.bucket)
	var keys [][]byte
	err := t.eachIn(b, func(k []byte, v T) error {
		if dead(v) {
			keys = append(keys, slices.Clone(k))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Deleted after the walk: a bucket must not change under its ForEach.
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// owned reads the values the index set owner names (userfams, say), oldest first by created,
// then by key; an index entry without a value is skipped.
func (t table[T]) owned(tx *bolt.Tx, index []byte, owner string, created func(T) time.Time) ([]T, error) {
	keys, err := members(tx.Bucket(index), owner)
	if err != nil {
		return nil, err
	}
	out := []T{}
	for _, k := range keys {
		v, err := t.get(tx, k)
		if apperr.Code(err) == apperr.ENOTFOUND {
			continue // a stale index entry
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	// Stable: the keys came in byte order.
	slices.SortStableFunc(out, func(a, b T) int { return created(a).Compare(created(b)) })
	return out, nil
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

// moveKey moves owner's entry in the index b (a key → owner map) from the key from to the key
// to ("" for none): taken when to is another owner's.
func moveKey(b *bolt.Bucket, from, to, owner string, taken error) error {
	if to != "" {
		if o := b.Get([]byte(to)); o != nil && string(o) != owner {
			return taken
		}
	}
	if from != "" {
		if err := b.Delete([]byte(from)); err != nil {
			return err
		}
	}
	if to == "" {
		return nil
	}
	return b.Put([]byte(to), []byte(owner))
}

// result runs fn in a transaction of run (s.write, s.batch or s.view) and returns what fn
// returned, the zero T when the transaction failed. fn may run more than once (s.batch).
func result[T any](ctx context.Context, run func(context.Context, func(*bolt.Tx) error) error, fn func(*bolt.Tx) (T, error)) (T, error) {
	var out T
	err := run(ctx, func(tx *bolt.Tx) (err error) {
		out, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// view is a read-only transaction, for result.
func (s *DB) view(_ context.Context, fn func(*bolt.Tx) error) error { return s.DB.View(fn) }

// collect is a write transaction without the context's audit events: the garbage collector's,
// for result.
func (s *DB) collect(_ context.Context, fn func(*bolt.Tx) error) error { return s.Update(fn) }

// deleteAll removes, in one transaction, the values of t dead is true for, each with del (which
// removes its index entries too), and returns how many.
func deleteAll[T any](s *DB, t table[T], dead func(T) bool, del func(*bolt.Tx, T) error) (int, error) {
	return result(context.Background(), s.collect, func(tx *bolt.Tx) (int, error) {
		all, err := t.where(tx.Bucket(t.bucket), dead)
		if err != nil {
			return 0, err
		}
		for _, v := range all {
			if err := del(tx, v); err != nil {
				return 0, err
			}
		}
		return len(all), nil
	})
}

// applier is an entity whose updates follow a rule of its own (identity's ApplyUpdate): what the
// updater may change, and whether the result is kept.
type applier[T any] interface {
	ApplyUpdate(fn func(T) (T, error)) (T, bool, error)
}

// applyIn is one Update of an applier's entity inside tx: the stored value read, fn applied
// under the entity's rule, the result stored when the rule keeps it. out is what the caller
// answers with (the stored value on a refusal); refused is the updater's or the rule's error;
// err is the transaction's (errNoChange when nothing is to be written).
func applyIn[T applier[T]](tx *bolt.Tx, t table[T], key string, fn func(T) (T, error)) (out T, refused, err error) {
	stored, err := t.get(tx, key)
	if err != nil {
		return stored, err, errNoChange
	}
	var keep bool
	if out, keep, refused = stored.ApplyUpdate(fn); !keep {
		return out, refused, errNoChange
	}
	out, err = t.store(tx, key, out)
	return out, refused, err
}
