// Package web holds what both services' HTTP layers share: the app envelope of API.md, strict
// JSON decoding, the one table that maps error codes to statuses, middleware, health checks and
// a server with graceful shutdown.
package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"jwtidp/shared/apperr"
)

// MaxBodyBytes is the largest request body either service reads (API.md: 64 KiB).
const MaxBodyBytes = 64 << 10

// maxJSONDepth bounds nesting so a deeply nested body cannot make the decoder work hard; no
// request of the contract nests at all.
const maxJSONDepth = 8

// Validator is implemented by request types: Valid returns the problems of a decoded value,
// field name to message, or nil.
type Validator interface {
	Valid() map[string]string
}

// Decode reads one JSON object from r into v: application/json only, at most MaxBodyBytes,
// valid UTF-8 (no lone surrogate escapes either), member names exactly as v's json tags spell
// them (a case variant is an unknown field), no member twice in any object, nothing after the
// object, and v's own rules. Its errors are *apperr.Error with a message that says what is
// wrong.
func Decode(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if r.ContentLength > MaxBodyBytes {
		// Refuse before reading a byte, and make sure the connection is not reused for the rest.
		w.Header().Set("Connection", "close")
		return tooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge()
		}
		return apperr.Wrap(apperr.EINVALID, err, "Could not read the request body")
	}
	if !utf8.Valid(body) {
		return apperr.Errorf(apperr.EINVALID, "Request body is not valid UTF-8")
	}
	if err := scanBody(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apperr.Errorf(apperr.EINVALID, "%s", describeJSONError(err))
	}
	if strings.TrimLeft(string(body[dec.InputOffset():]), " \t\r\n") != "" {
		return apperr.Errorf(apperr.EINVALID, "Request body must hold a single JSON object")
	}
	// encoding/json matches member names case-insensitively and keeps the last of duplicates;
	// a second pass over the (now known to be valid) body holds it to the exact names.
	if err := checkMembers(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	if val, ok := v.(Validator); ok {
		if problems := val.Valid(); len(problems) > 0 {
			return apperr.Errorf(apperr.EINVALID, "%s", joinProblems(problems))
		}
	}
	return nil
}

func tooLarge() error {
	return apperr.Errorf(apperr.ETOOLARGE, "Request body is larger than %d bytes", MaxBodyBytes)
}

func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return apperr.Errorf(apperr.EUNSUPPORTED, "Content-Type must be application/json")
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return apperr.Errorf(apperr.EUNSUPPORTED, "Content-Type must be application/json")
	}
	return nil
}

// scanBody bounds the nesting depth and refuses \u escapes that are half of a UTF-16 surrogate
// pair, which encoding/json would quietly turn into U+FFFD (so "\ud800" and "\ud801" would
// decode to the same string). It runs before the body is known to be valid JSON; whatever else
// is wrong is the decoder's to report.
func scanBody(body []byte) error {
	depth := 0
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case inString && c == '\\':
			i++ // the escaped byte: a quote or backslash there does not end or escape anything
			if i < len(body) && body[i] == 'u' {
				hi, ok := hex4(body, i+1)
				if !ok || !utf16.IsSurrogate(hi) {
					continue
				}
				lo, ok := rune(0), false
				if i+6 < len(body) && body[i+5] == '\\' && body[i+6] == 'u' {
					lo, ok = hex4(body, i+7)
				}
				if !ok || utf16.DecodeRune(hi, lo) == utf8.RuneError {
					return apperr.Errorf(apperr.EINVALID, "Request body is not valid UTF-8: %s at byte %d is half a surrogate pair", body[i-1:i+5], i-1)
				}
				i += 10 // past the low half's escape
			}
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			if depth > maxJSONDepth {
				return apperr.Errorf(apperr.EINVALID, "Request body is nested too deeply")
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// hex4 parses the four hex digits at b[i:], if they are there.
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "Request body is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "Request body is not valid JSON: it ends early"
	case errors.As(err, &syn):
		return fmt.Sprintf("Request body is not valid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return "Request body must be a JSON object"
		}
		return fmt.Sprintf("Field %q must be a %s", typ.Field, jsonTypeName(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "Unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	default:
		return "Request body is not valid JSON"
	}
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int64", "uint64", "float64":
		return "number"
	default:
		return kind
	}
}

func joinProblems(p map[string]string) string {
	// Deterministic order so the same request always gets the same message.
	keys := slices.Sorted(maps.Keys(p))
	msgs := make([]string, 0, len(keys))
	for _, k := range keys {
		msgs = append(msgs, p[k])
	}
	return strings.Join(msgs, "; ")
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"Status":"Error","result":"Internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// Envelope is the app response of the Flask-JWT design.
type Envelope struct {
	Status string `json:"Status"`
	Result any    `json:"result"`
}

// Success writes {"Status":"Success","result":result}.
func Success(w http.ResponseWriter, status int, result any) {
	WriteJSON(w, status, Envelope{Status: "Success", Result: result})
}

// SuccessRaw writes {"Status":"Success","result":<result>} where result is JSON the caller
// encoded itself, for hot paths that avoid reflection.
func SuccessRaw(w http.ResponseWriter, status int, result []byte) {
	const prefix, suffix = `{"Status":"Success","result":`, "}\n"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(prefix)+len(result)+len(suffix)))
	w.WriteHeader(status)
	w.Write([]byte(prefix))
	w.Write(result)
	w.Write([]byte(suffix))
}

// Status maps an error code to an HTTP status: the one table of the project.
func Status(code string) int {
	switch code {
	case apperr.EINVALID:
		return http.StatusBadRequest
	case apperr.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case apperr.EFORBIDDEN:
		return http.StatusForbidden
	case apperr.ENOTFOUND:
		return http.StatusNotFound
	case apperr.ECONFLICT:
		return http.StatusConflict
	case apperr.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case apperr.EUNSUPPORTED:
		return http.StatusUnsupportedMediaType
	case apperr.ETHROTTLED:
		return http.StatusTooManyRequests
	case apperr.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error writes err in the app envelope with the status of its code. Internal errors are logged
// with the request id and answered with a generic message.
func Error(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code := apperr.Code(err)
	if code == apperr.EINTERNAL {
		logger.ErrorContext(r.Context(), "internal error", "err", err)
	}
	SetRetryAfter(w, apperr.RetryAfter(err))
	if code == apperr.EUNAVAILABLE {
		ShedConnection(w)
	}
	WriteJSON(w, Status(code), Envelope{Status: "Error", Result: apperr.Message(err)})
}

// ShedConnection closes the connection after a 503: a server that refuses a request because it is
// overloaded (or its store is down) sheds the connection with it, so a burst of refused clients
// holds no idle connections (each a goroutine and its buffers) while they wait out Retry-After.
func ShedConnection(w http.ResponseWriter) { w.Header().Set("Connection", "close") }

// SetRetryAfter sets Retry-After in whole seconds, rounded up; nothing for d <= 0.
func SetRetryAfter(w http.ResponseWriter, d time.Duration) {
	if d <= 0 {
		return
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
}
