package boltdb

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"jwtidp/idp/identity"
)

// groups are kept by name; memberships twice, as sets in nested buckets — under the group's
// name its members' ids (bucketGroupMembers) and under the user's id their groups' names
// (bucketUserGroups) — so that a user's groups and a group's members are each one walk.
var groups = table[identity.Group]{bucket: bucketGroups, name: "group", missing: identity.ErrNoGroup, taken: identity.ErrGroupTaken,
	utc: func(g *identity.Group) { g.CreatedAt = g.CreatedAt.UTC() }}

// CreateGroup implements identity.GroupStore.
func (s *DB) CreateGroup(ctx context.Context, g identity.Group) error {
	if err := g.Validate(); err != nil {
		return err
	}
	return s.write(ctx, func(tx *bolt.Tx) error { return groups.create(tx, g.Name, g) })
}

// GetGroup implements identity.GroupStore.
func (s *DB) GetGroup(ctx context.Context, name string) (identity.Group, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) (identity.Group, error) { return groups.get(tx, name) })
}

// ListGroups implements identity.GroupStore: a walk of the groups, which bbolt keeps in the
// byte order of their names.
func (s *DB) ListGroups(ctx context.Context, opt identity.ListOptions) ([]identity.Group, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	return result(ctx, s.view, func(tx *bolt.Tx) ([]identity.Group, error) {
		out := []identity.Group{}
		err := page(tx.Bucket(bucketGroups), opt, func(k, v []byte) error {
			g, err := groups.unmarshal(k, v)
			out = append(out, g)
			return err
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	})
}

// DeleteGroup implements identity.GroupStore.
func (s *DB) DeleteGroup(ctx context.Context, name string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := groups.exists(tx, name); err != nil {
			return err
		}
		ids, err := members(tx.Bucket(bucketGroupMembers), name)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := unindex(tx.Bucket(bucketUserGroups), id, name); err != nil {
				return err
			}
		}
		if err := dropSet(tx.Bucket(bucketGroupMembers), name); err != nil {
			return err
		}
		return groups.delete(tx, name)
	})
}

// AddMember implements identity.GroupStore.
func (s *DB) AddMember(ctx context.Context, group, userID string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := groups.exists(tx, group); err != nil {
			return err
		}
		if err := users.exists(tx, userID); err != nil {
			return err
		}
		if isMember(tx, group, userID) {
			return identity.ErrAlreadyMember
		}
		if err := index(tx.Bucket(bucketGroupMembers), group, userID); err != nil {
			return err
		}
		return index(tx.Bucket(bucketUserGroups), userID, group)
	})
}

// RemoveMember implements identity.GroupStore.
func (s *DB) RemoveMember(ctx context.Context, group, userID string) error {
	return s.write(ctx, func(tx *bolt.Tx) error {
		if err := groups.exists(tx, group); err != nil {
			return err
		}
		if !isMember(tx, group, userID) {
			return identity.ErrNotMember
		}
		if err := unindex(tx.Bucket(bucketGroupMembers), group, userID); err != nil {
			return err
		}
		return unindex(tx.Bucket(bucketUserGroups), userID, group)
	})
}

// UserGroups implements identity.GroupStore: the user's set, which bbolt keeps in byte order.
func (s *DB) UserGroups(ctx context.Context, userID string) ([]string, error) {
	return result(ctx, s.view, func(tx *bolt.Tx) ([]string, error) {
		names, err := members(tx.Bucket(bucketUserGroups), userID)
		if names == nil {
			names = []string{}
		}
		return names, err
	})
}

// isMember reports whether the user is in the group's set of members.
func isMember(tx *bolt.Tx, group, userID string) bool {
	b := tx.Bucket(bucketGroupMembers).Bucket([]byte(group))
	return b != nil && b.Get([]byte(userID)) != nil
}

// unindex removes key from the nested bucket name of parent, and the bucket when it is left
// empty (the inverse of index).
func unindex(parent *bolt.Bucket, name, key string) error {
	b := parent.Bucket([]byte(name))
	if b == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return err
	}
	if k, _ := b.Cursor().First(); k == nil {
		return parent.DeleteBucket([]byte(name))
	}
	return nil
}

// dropSet removes the nested bucket name of parent, if there is one.
func dropSet(parent *bolt.Bucket, name string) error {
	if parent.Bucket([]byte(name)) == nil {
		return nil
	}
	return parent.DeleteBucket([]byte(name))
}

// deleteMemberships removes every membership of the user (DeleteUser).
func deleteMemberships(tx *bolt.Tx, userID string) error {
	names, err := members(tx.Bucket(bucketUserGroups), userID)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := unindex(tx.Bucket(bucketGroupMembers), name, userID); err != nil {
			return err
		}
	}
	return dropSet(tx.Bucket(bucketUserGroups), userID)
}
