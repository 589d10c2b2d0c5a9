// Package forge makes the forged and malformed access tokens of RFC 8725's attacks, for tests
// that every verifier of this project must refuse. It is imported by tests only.
package forge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Minter signs tokens the way the IdP does, with a key the test holds.
type Minter struct {
	Key      *rsa.PrivateKey
	KID      string
	Issuer   string
	Audience []string
	Subject  string // sub; "" for "forge-subject" (a verifier that also asks who sub is needs a real one)
}

// Claims are a valid token's claims.
func (m Minter) Claims() map[string]any {
	now := time.Now()
	sub := m.Subject
	if sub == "" {
		sub = "forge-subject"
	}
	return map[string]any{
		"iss": m.Issuer, "sub": sub, "aud": m.Audience, "exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(), "nbf": now.Unix(), "jti": "forge", "client_id": "idp",
		"scope": "workitems:read workitems:write", "preferred_username": "forge",
	}
}

func b64(v any) string {
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Sign signs claims with header overrides (nil deletes a member) using method and key.
func (m Minter) Sign(claims map[string]any, header map[string]any, method jwt.SigningMethod, key any) string {
	h := map[string]any{"alg": method.Alg(), "typ": "at+jwt", "kid": m.KID}
	for k, v := range header {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	input := b64(h) + "." + b64(claims)
	sig, err := method.Sign(input, key)
	if err != nil {
		panic(err)
	}
	return input + "." + b64(sig)
}

// Valid is a correctly signed token with valid claims.
func (m Minter) Valid() string { return m.Sign(m.Claims(), nil, jwt.SigningMethodRS256, m.Key) }

func hs256(header map[string]any, claims map[string]any, key []byte) string {
	input := b64(header) + "." + b64(claims)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// Case is one forged token.
type Case struct {
	Name  string
	Token string
}

// Cases returns every forgery. keyURL is a listener of the test's that must receive no request:
// it is what the jku and x5u headers point at.
func (m Minter) Cases(keyURL string) []Case {
	valid := m.Valid()
	parts := strings.Split(valid, ".")
	with := func(k string, v any) map[string]any {
		c := m.Claims()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	sign := func(c map[string]any, h map[string]any) string { return m.Sign(c, h, jwt.SigningMethodRS256, m.Key) }
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkix, _ := x509.MarshalPKIXPublicKey(&m.Key.PublicKey)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1 := x509.MarshalPKCS1PublicKey(&m.Key.PublicKey)
	jwkText, _ := json.Marshal(jose.JSONWebKey{Key: &m.Key.PublicKey, KeyID: m.KID, Algorithm: "RS256", Use: "sig"})
	attackerJWK := map[string]any{}
	aj, _ := json.Marshal(jose.JSONWebKey{Key: &attacker.PublicKey, KeyID: m.KID, Algorithm: "RS256", Use: "sig"})
	json.Unmarshal(aj, &attackerJWK)
	attackerCert := base64.StdEncoding.EncodeToString(pkix)
	hsHeader := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": m.KID}

	var cs []Case
	add := func(name, tok string) { cs = append(cs, Case{name, tok}) }
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		h := b64(map[string]any{"alg": alg, "typ": "at+jwt", "kid": m.KID})
		add("alg "+alg, h+"."+parts[1]+".")
		add("alg "+alg+" with a signature", h+"."+parts[1]+"."+parts[2])
	}
	add("HS256 keyed with the PEM public key", hs256(hsHeader, m.Claims(), pemKey))
	add("HS256 keyed with the PEM public key, no newline", hs256(hsHeader, m.Claims(), []byte(strings.TrimSpace(string(pemKey)))))
	add("HS256 keyed with the DER public key (PKIX)", hs256(hsHeader, m.Claims(), pkix))
	add("HS256 keyed with the DER public key (PKCS1)", hs256(hsHeader, m.Claims(), pkcs1))
	add("HS256 keyed with the JWK text", hs256(hsHeader, m.Claims(), jwkText))
	add("HS256 with an empty key", hs256(hsHeader, m.Claims(), nil))
	add("RS384 with the real key", m.Sign(m.Claims(), nil, jwt.SigningMethodRS384, m.Key))
	add("PS256 with the real key", m.Sign(m.Claims(), nil, jwt.SigningMethodPS256, m.Key))
	add("ES256 with an attacker key", m.Sign(m.Claims(), nil, jwt.SigningMethodES256, ecKey))
	add("attacker key under the real kid", m.Sign(m.Claims(), nil, jwt.SigningMethodRS256, attacker))
	for name, kid := range map[string]string{
		"path traversal": "../../../../etc/passwd", "SQL": "' OR '1'='1' --", "shell": "$(touch /tmp/pwned); `id`",
		"huge": strings.Repeat("k", 6000), "control characters": "kid\x00\r\nX-Injected: 1", "empty": "",
	} {
		add("kid injection: "+name, sign(m.Claims(), map[string]any{"kid": kid}))
	}
	add("kid of the wrong type", sign(m.Claims(), map[string]any{"kid": 42}))
	add("jku to the attacker", m.Sign(m.Claims(), map[string]any{"jku": keyURL + "/jwks.json", "kid": "attacker"}, jwt.SigningMethodRS256, attacker))
	add("x5u to the attacker", m.Sign(m.Claims(), map[string]any{"x5u": keyURL + "/cert.pem", "kid": "attacker"}, jwt.SigningMethodRS256, attacker))
	add("embedded jwk", m.Sign(m.Claims(), map[string]any{"jwk": attackerJWK, "kid": "attacker"}, jwt.SigningMethodRS256, attacker))
	add("embedded x5c", m.Sign(m.Claims(), map[string]any{"x5c": []string{attackerCert}, "kid": "attacker"}, jwt.SigningMethodRS256, attacker))
	add("jku with the real kid but the attacker's key", m.Sign(m.Claims(), map[string]any{"jku": keyURL + "/jwks.json"}, jwt.SigningMethodRS256, attacker))
	add("JWE-shaped", parts[0]+".."+b64("iv")+"."+b64("ciphertext")+"."+b64("tag"))
	js, _ := json.Marshal(map[string]any{"payload": parts[1], "signatures": []any{map[string]any{"protected": parts[0], "signature": parts[2]}}})
	add("JSON serialization", string(js))
	flipped := []byte(parts[2])
	mid := len(flipped) / 2
	if flipped[mid] == 'A' {
		flipped[mid] = 'B'
	} else {
		flipped[mid] = 'A'
	}
	add("signature byte flipped in the middle", parts[0]+"."+parts[1]+"."+string(flipped))
	add("signature stripped", parts[0]+"."+parts[1]+".")
	add("signature of padded base64", parts[0]+"."+parts[1]+"."+parts[2]+"==")
	add("tampered payload", parts[0]+"."+b64(with("sub", "admin"))+"."+parts[2])
	add("typ JWT", sign(m.Claims(), map[string]any{"typ": "JWT"}))
	add("no typ", sign(m.Claims(), map[string]any{"typ": nil}))
	add("crit header", sign(m.Claims(), map[string]any{"crit": []string{"exp"}}))
	add("wrong iss", sign(with("iss", "https://evil.example"), nil))
	add("no iss", sign(with("iss", nil), nil))
	add("no exp", sign(with("exp", nil), nil))
	add("expired", sign(with("exp", time.Now().Add(-10*time.Minute).Unix()), nil))
	add("nbf in the future", sign(with("nbf", time.Now().Add(10*time.Minute).Unix()), nil))
	add("iat in the future", sign(with("iat", time.Now().Add(10*time.Minute).Unix()), nil))
	add("exp as a string", sign(with("exp", "tomorrow"), nil))
	add("aud as a number", sign(with("aud", 7), nil))
	add("sub as an object", sign(with("sub", map[string]any{"id": 1}), nil))
	add("iss as an array", sign(with("iss", []string{m.Issuer}), nil))
	add("no sub", sign(with("sub", nil), nil))
	if len(m.Audience) > 0 {
		add("wrong aud", sign(with("aud", []string{"billing"}), nil))
		add("no aud", sign(with("aud", nil), nil))
	}
	add("not a JWT", "hello")
	add("empty segments", "..")
	return cs
}
