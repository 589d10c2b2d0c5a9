package password

import (
	_ "embed"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"jwtidp/shared/apperr"
)

// MinChars is the shortest password accepted, in characters of its NFKC form.
const MinChars = 8

// blocklist.txt holds the passwords refused as too common: zxcvbn's frequency lists (common
// passwords, English words, names) and Openwall's list, about 97,000 entries, normalised as
// blocklistKey does, sorted bytewise, one a line. internal/genblocklist makes it and says where
// the lists come from. It is searched in place: the package loads nothing at start-up and keeps no
// copy of it on the heap.
//
//go:generate go run ./internal/genblocklist -o blocklist.txt
//go:embed blocklist.txt
var blocklist string

// normalize is the form of a password that is checked and hashed: NFKC, so that the same password
// typed on another keyboard or input method (a full-width "ｐａｓｓ", a Kelvin sign for a K, an
// accent composed or not) is the same password.
func normalize(password string) string { return norm.NFKC.String(password) }

// blocklistKey is how a normalised password is looked up in the blocklist.
func blocklistKey(normalized string) string { return strings.ToLower(strings.TrimSpace(normalized)) }

// CheckPolicy enforces API.md's password rules, after NIST SP 800-63B: the password, NFKC
// normalised, is at least MinChars characters long, is not the username, not one character
// repeated, and, trimmed and lower-cased, not on the list of common passwords, words and names. The
// upper bound, MaxBytes, is on the password as given. Nothing is truncated and any Unicode is
// allowed. Each broken rule has its own message.
func CheckPolicy(username, password string) error {
	if len(password) > MaxBytes {
		return apperr.Errorf(apperr.EINVALID, "Password must be at most %d bytes long", MaxBytes)
	}
	pw := normalize(password)
	key := blocklistKey(pw)
	switch {
	case key == "" && pw != "":
		return apperr.Errorf(apperr.EINVALID, "Password must not be only spaces")
	case utf8.RuneCountInString(strings.TrimSpace(pw)) < MinChars:
		// Counted without surrounding spaces: "      xy" is two characters of password.
		return apperr.Errorf(apperr.EINVALID, "Password must be at least %d characters long", MinChars)
	case strings.EqualFold(key, strings.TrimSpace(normalize(username))):
		return apperr.Errorf(apperr.EINVALID, "Password must not be the username")
	case oneRuneRepeated(key):
		return apperr.Errorf(apperr.EINVALID, "Password must not be one character repeated")
	case inBlocklist(blocklist, key):
		return apperr.Errorf(apperr.EINVALID, "Password is too common: it is on the list of common passwords, words and names")
	}
	return nil
}

// oneRuneRepeated reports whether s is one character, repeated.
func oneRuneRepeated(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	for _, r := range s {
		if r != first {
			return false
		}
	}
	return true
}

// inBlocklist reports whether w is a line of list, whose lines are sorted bytewise and each end in
// "\n": a binary search over the bytes, which finds the line around each probe.
func inBlocklist(list, w string) bool {
	lo, hi := 0, len(list) // the lines that start in [lo, hi) are left; lo and hi are line starts
	for lo < hi {
		mid := lo + (hi-lo)/2
		start := lo + strings.LastIndexByte(list[lo:mid], '\n') + 1
		end := start + strings.IndexByte(list[start:], '\n')
		switch line := list[start:end]; {
		case line == w:
			return true
		case line < w:
			lo = end + 1
		default:
			hi = start
		}
	}
	return false
}
