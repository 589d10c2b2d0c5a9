// Package apperr is the one error vocabulary of both services: a domain or storage package
// returns an *Error with a code, and the HTTP layer maps that code to a status in exactly one
// place (shared/web). Anything that is not an *Error is internal and never shown to a client.
package apperr

import (
	"errors"
	"fmt"
	"time"
)

// Codes, after Ben Johnson's WTF dial.
const (
	EINVALID      = "invalid"      // the request is malformed or breaks a rule
	EUNAUTHORIZED = "unauthorized" // credentials are missing or wrong
	EFORBIDDEN    = "forbidden"    // authenticated, but not allowed
	ENOTFOUND     = "not_found"    // does not exist, or is not the caller's
	ECONFLICT     = "conflict"     // already exists
	ETOOLARGE     = "too_large"    // the body is over the limit
	EUNSUPPORTED  = "unsupported"  // wrong content type
	ETHROTTLED    = "throttled"    // too many attempts: retry later
	EUNAVAILABLE  = "unavailable"  // a dependency or resource is busy or down: retry later
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is an error a client may be told about. Message is written for the client; Err is the
// cause, for the log only.
type Error struct {
	Code       string
	Message    string
	RetryAfter time.Duration // for ETHROTTLED and EUNAVAILABLE; 0 when unknown
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error that carries err as its cause.
func Wrap(code string, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// Code returns the code of the first *Error in err's chain, EINTERNAL when there is none and ""
// for a nil error.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// Message returns the client-safe message of err: the *Error's own, or a generic one for
// internal errors, so that no internal detail reaches a client.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "Internal error"
}

// RetryAfter returns how long the client should wait, 0 when err does not say.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
