package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"jwtidp/shared/jwtauth"
)

// claimsOf builds the claims of one access token from fuzzable parts: flags pick which of the
// optional parts are there (nil, empty or set), so every omitempty is taken both ways.
func claimsOf(strs [8]string, unix int64, flags uint16) accessClaims {
	pick := func(bit int, s ...string) []string {
		switch flags >> (2 * bit) & 3 {
		case 0:
			return nil
		case 1:
			return []string{}
		case 2:
			return s[:1]
		default:
			return s
		}
	}
	at := func(bit int, d time.Duration) *jwt.NumericDate {
		if flags>>(8+bit)&1 == 0 {
			return nil
		}
		return jwt.NewNumericDate(time.Unix(unix, 0).Add(d))
	}
	c := accessClaims{Claims: jwtauth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: strs[0], Subject: strs[1], Audience: pick(0, strs[2], strs[3]),
			ExpiresAt: at(0, 15*time.Minute), NotBefore: at(1, 0), IssuedAt: at(2, 0), ID: strs[4]},
		ClientID: strs[5], Scope: strs[6], AMR: pick(1, "pwd", strs[7]), Sid: strs[7], Groups: pick(2, strs[3], strs[0]),
		PreferredUsername: "hidden by the outer field",
	}, PreferredUsername: strs[2]}
	if flags>>11&1 == 1 {
		c.Act = &jwtauth.Actor{Subject: strs[5]}
		if flags>>12&1 == 1 {
			c.Act.Act = &jwtauth.Actor{Subject: strs[6]}
		}
	}
	return c
}

func checkSameJSON(t *testing.T, c accessClaims) {
	t.Helper()
	want, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.appendJSON(nil); !bytes.Equal(got, want) {
		t.Fatalf("appendJSON\n got %s\nwant %s", got, want)
	}
}

// The hand-written JSON of an access token is encoding/json's, byte for byte: every field, each
// omitempty taken both ways, and strings that need escaping (HTML's <>&, quotes, control
// characters, invalid UTF-8, U+2028).
func TestAccessJSONIsEncodingJSONs(t *testing.T) {
	plain := [8]string{"http://127.0.0.1:8000", "u_1", "workitems", "other", "jti-1", "idp", "openid profile", "sid-1"}
	odd := [8]string{"", `quote " and \ back`, "<script>&amp;</script>", "tab\tnew\nline\x01", "\xff\xfeinvalid",
		"é ü 日本", "line\u2028sep\u2029", ""}
	one := [8]string{"a&b", ">", "<", `"`, `\`, "\x7f", "\u2029", "\x00"} // one each
	for _, strs := range [][8]string{plain, odd, one, {}} {
		for flags := 0; flags < 1<<13; flags += 7 {
			checkSameJSON(t, claimsOf(strs, 1796601600, uint16(flags)))
		}
		checkSameJSON(t, claimsOf(strs, 1796601600, 1<<13-1))
	}
}

func FuzzAccessJSON(f *testing.F) {
	f.Add("http://idp", "u_1", "aud", "aud2", "jti", "client", "openid", "pwd", int64(1796601600), uint16(0xffff))
	f.Add("", "<&>", "\xff", "\u2028", "\"", "\\", "\t", "", int64(-1), uint16(0))
	f.Fuzz(func(t *testing.T, s0, s1, s2, s3, s4, s5, s6, s7 string, unix int64, flags uint16) {
		if unix < -1<<40 || unix > 1<<40 {
			return // time.Unix's range and the minute added to it, far from any token's date
		}
		checkSameJSON(t, claimsOf([8]string{s0, s1, s2, s3, s4, s5, s6, s7}, unix, flags))
	})
}

// A token's header is golang-jwt's: the first part of its signing string for the same kid and
// typ (its header map marshalled, keys sorted).
func TestHeaderIsGolangJWTs(t *testing.T) {
	for _, kid := range []string{"k2026-12-07T00:00:00Z", `odd "kid" <&>`, ""} {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{})
		tok.Header["typ"], tok.Header["kid"] = "at+jwt", kid
		signing, err := tok.SigningString()
		if err != nil {
			t.Fatal(err)
		}
		want, _, _ := strings.Cut(signing, ".")
		if got := base64.RawURLEncoding.EncodeToString(appendHeader(nil, kid, "at+jwt")); got != want {
			t.Fatalf("header of kid %q\n got %s\nwant %s", kid, got, want)
		}
	}
}

// The encoder writes aud as golang-jwt's defaults do (always an array) and times in whole
// seconds; a change of either default in golang-jwt fails here, not in the tokens.
func TestGolangJWTDefaults(t *testing.T) {
	if !jwt.MarshalSingleStringAsArray || jwt.TimePrecision != time.Second {
		t.Fatalf("golang-jwt's MarshalSingleStringAsArray %v, TimePrecision %v: appendJSON assumes true and 1s",
			jwt.MarshalSingleStringAsArray, jwt.TimePrecision)
	}
}

// An access token is what golang-jwt made before: its header and claims parse back, and the
// payload is the claims' JSON as encoding/json writes it.
func TestAccessTokenParts(t *testing.T) {
	now := time.Unix(1796601600, 0)
	iss := &Issuer{Issuer: "http://idp", TTL: time.Minute, Keys: oneKey{}, Now: func() time.Time { return now },
		Random: strings.NewReader(strings.Repeat("r", 16))}
	raw, _, err := iss.Access(Access{Subject: "u_1", Username: "alice", ClientID: "idp", Scope: "workitems", Audience: []string{"workitems"},
		AMR: []string{"pwd"}, SessionID: "s", Groups: []string{"g"}, Act: &jwtauth.Actor{Subject: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: %d parts", raw, len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"iss":"http://idp","sub":"u_1","aud":["workitems"],"exp":1796601660,"nbf":1796601600,"iat":1796601600,` +
		`"jti":"cnJycnJycnJycnJycnJycg","client_id":"idp","scope":"workitems","amr":["pwd"],"sid":"s","groups":["g"],` +
		`"act":{"sub":"c"},"preferred_username":"alice"}`
	if string(payload) != want {
		t.Fatalf("payload\n got %s\nwant %s", payload, want)
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || string(header) != `{"alg":"RS256","kid":"k2026-12-07T00:00:00Z","typ":"at+jwt"}` {
		t.Fatalf("header %s: %v", header, err)
	}
	if sig, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil || len(sig) != 256 {
		t.Fatalf("signature of %d bytes: %v", len(sig), err)
	}
}
