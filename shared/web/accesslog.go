package web

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// NewLogHandler is a service's log handler: slog's text handler, or its JSON handler when json
// is set, at level, writing to w — and, for the access-log line every request writes, the same
// line appended by hand (accessHandler.logAccess), byte for byte what slog's handler writes of
// it (TestAccessLineIsSlogs, FuzzAccessLine). slog's generic path (the record, its attributes'
// values, the handler's state) cost as much as the rest of a small request's middleware.
func NewLogHandler(w io.Writer, json bool, level slog.Leveler) slog.Handler {
	lw := &lockedWriter{w: w}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(lw, opts)
	if json {
		h = slog.NewJSONHandler(lw, opts)
	}
	return RequestIDHandler(accessHandler{Handler: h, w: lw, json: json})
}

// lockedWriter makes the hand-made lines and slog's one writer's: one Write a line, never two
// at once.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// accessHandler is slog's handler h (made by NewLogHandler: no attributes, no groups, no
// ReplaceAttr, no source) that can also write the access line itself. With attributes or a
// group it is h's, which cannot.
type accessHandler struct {
	slog.Handler
	w    io.Writer
	json bool
}

func (h accessHandler) WithAttrs(as []slog.Attr) slog.Handler { return h.Handler.WithAttrs(as) }
func (h accessHandler) WithGroup(name string) slog.Handler    { return h.Handler.WithGroup(name) }

// access is the access-log line's fields.
type access struct {
	time                      time.Time
	level                     slog.Level
	id, method, route, client string
	status                    int
	duration                  time.Duration
}

var lineBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func (h accessHandler) logAccess(a access) {
	bp := lineBufs.Get().(*[]byte)
	b := appendAccess((*bp)[:0], a, h.json)
	h.w.Write(b)
	if cap(b) <= 4<<10 {
		*bp = b
		lineBufs.Put(bp)
	}
}

// appendAccess appends a's line as slog's text handler (or JSON handler) writes the record
// "request" with a's attributes in the middleware's order.
func appendAccess(b []byte, a access, json bool) []byte {
	str := appendTextString
	if json {
		str = appendJSONString
		b = append(b, `{"time":"`...)
		b = a.time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":`...)
	} else {
		b = append(b, "time="...)
		b = appendRFC3339Millis(b, a.time)
		b = append(b, " level="...)
	}
	b = str(b, a.level.String())
	key := func(b []byte, k string) []byte {
		if json {
			return append(append(append(b, `,"`...), k...), `":`...)
		}
		return append(append(append(b, ' '), k...), '=')
	}
	b = str(key(b, "msg"), "request")
	b = str(key(b, "request_id"), a.id)
	b = str(key(b, "method"), a.method)
	b = str(key(b, "route"), a.route)
	b = strconv.AppendInt(key(b, "status"), int64(a.status), 10)
	if json {
		b = strconv.AppendInt(key(b, "duration"), int64(a.duration), 10)
	} else {
		b = append(key(b, "duration"), a.duration.String()...)
	}
	b = str(key(b, "client"), a.client)
	if json {
		b = append(b, '}')
	}
	return append(b, '\n')
}

// appendRFC3339Millis is slog's text handler's time: RFC 3339 with exactly three digits of
// milliseconds.
func appendRFC3339Millis(b []byte, t time.Time) []byte {
	const prefixLen = len("2006-01-02T15:04:05.000")
	n := len(b)
	t = t.Truncate(time.Millisecond).Add(time.Millisecond / 10)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b[:n+prefixLen], b[n+prefixLen+1:]...) // drop the 4th digit
}

// appendTextString is slog's text handler's string: as it is, or quoted (strconv.Quote) when
// empty or holding a space, '=', a quote, a control character, an invalid or unprintable rune.
func appendTextString(b []byte, s string) []byte {
	if textNeedsQuoting(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}

func textNeedsQuoting(s string) bool {
	if len(s) == 0 {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !jsonSafe(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// jsonSafe reports whether the ASCII byte c stands for itself in a JSON string.
func jsonSafe(c byte) bool { return c >= 0x20 && c != '"' && c != '\\' }

// appendJSONString is slog's JSON handler's string: quoted, escaped as encoding/json escapes
// without HTML escaping (invalid bytes as U+FFFD, U+2028 and U+2029 escaped).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe(c) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}

// accessLogger is what the middleware looks for in its handler to write the access line itself.
type accessLogger interface {
	slog.Handler
	logAccess(access)
}

var _ accessLogger = accessHandler{}

// logAccessLine writes a's line through h: by hand when h is NewLogHandler's, else as a record.
func logAccessLine(ctx context.Context, h slog.Handler, a access) {
	if fast, ok := h.(accessLogger); ok {
		fast.logAccess(a)
		return
	}
	line := slog.NewRecord(a.time, a.level, "request", 0)
	line.AddAttrs(slog.String("request_id", a.id), slog.String("method", a.method), slog.String("route", a.route),
		slog.Int("status", a.status), slog.Duration("duration", a.duration), slog.String("client", a.client))
	h.Handle(ctx, line)
}
