package web

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

// DecodeForm reads an application/x-www-form-urlencoded body of at most MaxBodyBytes. Only the
// body counts: the query string is not mixed in. Every name and value must be valid UTF-8
// once unescaped, and no parameter may be repeated (RFC 6749 §3.1: "Request and response
// parameters MUST NOT be included more than once"), so each url.Values entry holds one value.
// Its errors are *apperr.Error: EUNSUPPORTED for another content type, ETOOLARGE, EINVALID.
func DecodeForm(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, apperr.Errorf(apperr.EUNSUPPORTED, "Content-Type must be application/x-www-form-urlencoded")
	}
	if r.ContentLength > MaxBodyBytes {
		w.Header().Set("Connection", "close")
		return nil, tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge()
		}
		return nil, apperr.Wrap(apperr.EINVALID, err, "Could not read the request body")
	}
	return parseForm(string(body))
}

// parseForm is url.ParseQuery (which also refuses ';' as a separator) without the merging of
// repeated names, and with the UTF-8 check.
func parseForm(s string) (url.Values, error) {
	form := url.Values{}
	for pair := range strings.SplitSeq(s, "&") {
		if pair == "" {
			continue
		}
		if strings.Contains(pair, ";") {
			return nil, apperr.Errorf(apperr.EINVALID, "Request body is not a valid form: ';' is not a separator")
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(rawName)
		if err != nil {
			return nil, apperr.Wrap(apperr.EINVALID, err, "Request body is not a valid form: bad %-escape")
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			return nil, apperr.Wrap(apperr.EINVALID, err, "Request body is not a valid form: bad %-escape")
		}
		if !utf8.ValidString(name) {
			return nil, apperr.Errorf(apperr.EINVALID, "Parameter name %q is not valid UTF-8", name)
		}
		if !utf8.ValidString(value) {
			return nil, apperr.Errorf(apperr.EINVALID, "Parameter %q is not valid UTF-8", name)
		}
		if _, dup := form[name]; dup {
			return nil, apperr.Errorf(apperr.EINVALID, "Parameter %q is repeated", name)
		}
		form[name] = []string{value}
	}
	return form, nil
}
