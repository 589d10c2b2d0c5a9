package storetest

import (
	"context"
	"slices"
	"strings"
	"sync"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// MemClients is an in-memory identity.ClientStore with the contract's errors, for the tests of
// the packages that use a ClientStore (auth, httpapi): no transactions, one process.
type MemClients struct {
	mu sync.Mutex
	m  map[string]identity.Client
}

// NewMemClients returns an empty MemClients.
func NewMemClients() *MemClients { return &MemClients{m: map[string]identity.Client{}} }

func (s *MemClients) CreateClient(_ context.Context, c identity.Client) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[c.ID]; ok {
		return apperr.Errorf(apperr.ECONFLICT, "taken")
	}
	s.m[c.ID] = c
	return nil
}

func (s *MemClients) GetClient(_ context.Context, id string) (identity.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[id]
	if !ok {
		return c, apperr.Errorf(apperr.ENOTFOUND, "no client")
	}
	return c, nil
}

func (s *MemClients) ListClients(context.Context) ([]identity.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []identity.Client{}
	for _, c := range s.m {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b identity.Client) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (s *MemClients) UpdateClient(_ context.Context, id string, fn func(identity.Client) (identity.Client, error)) (identity.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.m[id]
	if !ok {
		return c, apperr.Errorf(apperr.ENOTFOUND, "no client")
	}
	next, err := fn(c)
	if err != nil {
		return identity.Client{}, err
	}
	if next.ID != id {
		return identity.Client{}, apperr.Errorf(apperr.EINVALID, "id changed")
	}
	if err := next.Validate(); err != nil {
		return identity.Client{}, err
	}
	s.m[id] = next
	return next, nil
}

func (s *MemClients) DeleteClient(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[id]; !ok {
		return apperr.Errorf(apperr.ENOTFOUND, "no client")
	}
	delete(s.m, id)
	return nil
}
