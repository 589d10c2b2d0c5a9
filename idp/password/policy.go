package password

import (
	_ "embed"
	"strings"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

// common-passwords.txt is Openwall's public-domain list of the most common passwords (John the
// Ripper's password.lst, 3,546 entries); lines starting with "#!" are its comments.
//
//go:embed common-passwords.txt
var commonList string

var common = func() map[string]struct{} {
	m := make(map[string]struct{}, 4000)
	for _, line := range strings.Split(commonList, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#!") {
			continue
		}
		m[strings.ToLower(line)] = struct{}{}
	}
	return m
}()

// CheckPolicy enforces API.md's password rules. Length is counted in characters, the upper bound
// in bytes; nothing is truncated and any Unicode is allowed.
func CheckPolicy(username, password string) error {
	if len(password) > MaxBytes {
		return apperr.Errorf(apperr.EINVALID, "Password must be at most %d bytes long", MaxBytes)
	}
	if utf8.RuneCountInString(password) < 8 {
		return apperr.Errorf(apperr.EINVALID, "Password must be at least 8 characters long")
	}
	if strings.EqualFold(password, username) {
		return apperr.Errorf(apperr.EINVALID, "Password must not be the username")
	}
	if _, ok := common[strings.ToLower(password)]; ok {
		return apperr.Errorf(apperr.EINVALID, "Password is too common: it is on the list of common passwords")
	}
	return nil
}
