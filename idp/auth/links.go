package auth

import (
	"context"
	"errors"

	"jwtidp/idp/identity"
	"jwtidp/idp/token"
	"jwtidp/shared/apperr"
)

// newLinkToken is a mailed link's random token (256 bits) and, when id is "", a random id.
func (s *core) newLinkToken(id string) (tok, linkID string, err error) {
	if tok, err = token.RandomString(s.Random, 32); err != nil {
		return "", "", err
	}
	if id == "" {
		if id, err = token.RandomString(s.Random, 16); err != nil {
			return "", "", err
		}
	}
	return tok, id, nil
}

// peekLink reads the live link of kind whose token is tok, changing nothing, and returns it
// with the token's hash; bad for a token that is no such link (unknown, used, expired, of
// another kind).
func (s *core) peekLink(ctx context.Context, tok string, kind identity.LinkKind, bad error) (identity.Link, string, error) {
	if s.Links == nil || tok == "" || len(tok) > 100 {
		return identity.Link{}, "", bad
	}
	hash := HashSecret(tok)
	var l identity.Link
	_, err := s.Links.UseLink(ctx, hash, func(x identity.Link) (identity.Link, error) { l = x; return x, errPeek })
	switch {
	case apperr.Code(err) == apperr.ENOTFOUND:
		return identity.Link{}, "", bad
	case !errors.Is(err, errPeek):
		return identity.Link{}, "", err
	case l.Kind != kind || !l.Live(s.Now()):
		return identity.Link{}, "", bad
	}
	return l, hash, nil
}

// spendLink uses the link of hash, decided in the store: bad when another use came first or it
// expired meanwhile.
func (s *core) spendLink(ctx context.Context, hash string, bad error) error {
	now := s.Now().UTC()
	_, err := s.Links.UseLink(ctx, hash, func(x identity.Link) (identity.Link, error) {
		if !x.Live(now) {
			return identity.Link{}, bad
		}
		x.UsedAt = now
		return x, nil
	})
	return err
}
