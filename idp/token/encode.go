package token

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/jwtauth"
)

// Every grant signs an access token, and encoding/json spent about as long reflecting over its
// claims and the header's map as the rest of the token's making (a few µs of a refresh's CPU
// in a profile, beside the signature): the access token's JSON and every header are appended
// here by hand instead, byte for byte what encoding/json writes (TestAccessJSONIsEncodingJSONs
// and its fuzz target hold them to it), so a token does not change by how it was made.

// appendJSON appends c as encoding/json marshals it: jwt.RegisteredClaims' fields (all
// omitempty; aud always an array and times in whole seconds, golang-jwt's defaults, which
// TestGolangJWTDefaults holds), then client_id and scope (always), amr, sid, groups, act
// (omitempty), and preferred_username (omitempty: the outer field hides jwtauth.Claims' own).
func (c *accessClaims) appendJSON(b []byte) []byte {
	r := &c.RegisteredClaims
	b = append(b, '{')
	first := true
	field := func(name string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	// str and strs write a string or a list, or nothing when it is empty and omitted then.
	str := func(name, v string, omitEmpty bool) {
		if v != "" || !omitEmpty {
			field(name)
			b = appendJSONString(b, v)
		}
	}
	strs := func(name string, v []string) {
		if len(v) > 0 {
			field(name)
			b = appendJSONStrings(b, v)
		}
	}
	str("iss", r.Issuer, true)
	str("sub", r.Subject, true)
	strs("aud", r.Audience)
	for _, d := range []struct {
		name string
		at   *jwt.NumericDate
	}{{"exp", r.ExpiresAt}, {"nbf", r.NotBefore}, {"iat", r.IssuedAt}} {
		if d.at != nil {
			field(d.name)
			// golang-jwt's default precision (TestGolangJWTDefaults): whole seconds, an integer.
			b = strconv.AppendInt(b, d.at.Unix(), 10)
		}
	}
	str("jti", r.ID, true)
	str("client_id", c.ClientID, false)
	str("scope", c.Scope, false)
	strs("amr", c.AMR)
	str("sid", c.Sid, true)
	strs("groups", c.Groups)
	if c.Act != nil {
		field("act")
		b = appendActor(b, c.Act)
	}
	str("preferred_username", c.PreferredUsername, true)
	return append(b, '}')
}

// appendActor appends an act claim: {"sub":…,"act":…}, the nested actor omitted when nil.
func appendActor(b []byte, a *jwtauth.Actor) []byte {
	b = append(b, `{"sub":`...)
	b = appendJSONString(b, a.Subject)
	if a.Act != nil {
		b = append(b, `,"act":`...)
		b = appendActor(b, a.Act)
	}
	return append(b, '}')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString appends s quoted as encoding/json quotes it. The claims' strings are ids,
// scopes and names, almost always printable ASCII with nothing to escape, which is appended
// as it is; anything else (a quote, a control character, <, > or &, which encoding/json
// escapes for HTML, or any byte past ASCII) is left to encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendHeader appends a JWS header as golang-jwt writes it (its map marshalled, so the keys
// sorted): {"alg":"RS256","kid":…,"typ":…}.
func appendHeader(b []byte, kid, typ string) []byte {
	b = append(b, `{"alg":"RS256","kid":`...)
	b = appendJSONString(b, kid)
	b = append(b, `,"typ":`...)
	b = appendJSONString(b, typ)
	return append(b, '}')
}
