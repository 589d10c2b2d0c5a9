package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// MaxLDAPUsername is the longest username an ldap connector asks its directory about.
const MaxLDAPUsername = 256

// ldapTimeout bounds a whole Login or Refresh whose context has no deadline of its own.
const ldapTimeout = 10 * time.Second

// ldapConnector checks passwords against an LDAP directory. It keeps no connection: each Login
// and Refresh dials, binds, searches and closes — a sign-in costs a TCP and TLS handshake, which
// a login form can afford, and nothing can go stale between calls (a pool is for later, if ever).
//
// The Identity's Subject is the user entry's DN. Not entryUUID: Refresh must find the entry again
// from the Identity alone, a DN is the one name every directory (OpenLDAP, Active Directory) can
// be searched by as a base, and it is what Dex's LDAP connector links by. The cost: a user
// renamed or moved in the directory is a new upstream subject here.
type ldapConnector struct {
	c      Config
	u      *url.URL
	tls    *tls.Config
	logger *slog.Logger
}

// NewLDAP makes an ldap connector (its secret files read by Config.Load). It does not connect:
// a directory that is down at start fails its sign-ins, not the IdP.
func NewLDAP(c Config, logger *slog.Logger) (PasswordConnector, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("connector %q: url: %w", c.ID, err)
	}
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("connector %q: cannot read its ca_file: %w", c.ID, errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("connector %q: its ca_file holds no PEM certificate", c.ID)
		}
		tc.RootCAs = pool
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ldapConnector{c: c, u: u, tls: tc, logger: logger}, nil
}

// checkUsername refuses what no directory entry should be asked about: empty, over-long, not
// UTF-8, or holding control characters. Filter syntax (*, parentheses, backslash) is not refused
// here: the search escapes it, so "*)(uid=*" is looked up literally and matches nobody.
func checkUsername(username string) bool {
	if username == "" || len(username) > MaxLDAPUsername || !utf8.ValidString(username) {
		return false
	}
	for _, r := range username {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// open dials the directory and binds as the service account: the connection, closed by done
// (and at once if ctx ends first), or why it could not be had.
func (l *ldapConnector) open(ctx context.Context) (conn *ldap.Conn, done func(), err error) {
	if conn, err = l.dial(ctx); err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	done = func() { stop(); conn.Close() }
	if err := l.serviceBind(conn); err != nil {
		done()
		return nil, nil, err
	}
	return conn, done, nil
}

// Login binds as the user found by username to check password.
func (l *ldapConnector) Login(ctx context.Context, username, password string) (Identity, error) {
	// An LDAP simple bind with a DN and an empty password is an unauthenticated bind, which
	// servers answer with success (RFC 4513 §5.1.2): never ask one.
	if password == "" || !checkUsername(username) {
		return Identity{}, ErrInvalidCredentials
	}
	conn, done, err := l.open(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer done()
	filter := fmt.Sprintf("(&%s(%s=%s))", l.c.UserSearch.Filter, l.c.UserSearch.UsernameAttr, ldap.EscapeFilter(username))
	entry, err := l.findOne(conn, l.c.UserSearch.BaseDN, ldap.ScopeWholeSubtree, filter)
	if err != nil {
		return Identity{}, err
	}
	if err := conn.Bind(entry.DN, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return Identity{}, ErrInvalidCredentials
		}
		return Identity{}, l.unavailable("bind as the user", err)
	}
	// Back to the service account for the group search: the user may not read groups.
	if err := l.serviceBind(conn); err != nil {
		return Identity{}, err
	}
	return l.identity(conn, entry)
}

// Refresh reads the entry at id.Subject (its DN) again, as the service account, and requires it
// to still match the user filter: a deleted entry, or one the filter now excludes (a disabled
// account, by the filter's design), is ErrGone.
func (l *ldapConnector) Refresh(ctx context.Context, id Identity) (Identity, error) {
	if id.Subject == "" {
		return Identity{}, ErrGone
	}
	conn, done, err := l.open(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer done()
	entry, err := l.findOne(conn, id.Subject, ldap.ScopeBaseObject, l.c.UserSearch.Filter)
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		return Identity{}, ErrGone
	case err != nil:
		return Identity{}, err
	}
	return l.identity(conn, entry)
}

// dial connects as the URL says — ldaps:// with the CA, ldap:// with StartTLS, or plain ldap://
// (Config.Validate allows it only to a loopback host) — within ctx's deadline (ldapTimeout when
// it has none). Its callers close it when ctx ends, too.
func (l *ldapConnector) dial(ctx context.Context) (*ldap.Conn, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(ldapTimeout)
	}
	d := &net.Dialer{Deadline: deadline}
	conn, err := ldap.DialURL(l.c.URL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(l.tls))
	if err != nil {
		return nil, l.unavailable("dial", err)
	}
	conn.SetTimeout(time.Until(deadline))
	if l.u.Scheme == "ldap" && l.c.StartTLS {
		if err := conn.StartTLS(l.tls); err != nil {
			conn.Close()
			return nil, l.unavailable("StartTLS", err)
		}
	}
	return conn, nil
}

// serviceBind binds as the service account, when one is configured (else searches are anonymous).
func (l *ldapConnector) serviceBind(conn *ldap.Conn) error {
	if l.c.BindDN == "" {
		return nil
	}
	if err := conn.Bind(l.c.BindDN, l.c.BindPassword); err != nil {
		return l.unavailable("bind as the service account "+l.c.BindDN, err)
	}
	return nil
}

// findOne searches for exactly one entry: none, or more than one, is ErrInvalidCredentials (a
// username that names two people proves nobody).
func (l *ldapConnector) findOne(conn *ldap.Conn, base string, scope int, filter string) (*ldap.Entry, error) {
	attrs := []string{l.c.UserSearch.UsernameAttr}
	for _, a := range []string{l.c.UserSearch.EmailAttr, l.c.UserSearch.NameAttr} {
		if a != "" {
			attrs = append(attrs, a)
		}
	}
	req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 2, 0, false, filter, attrs, nil)
	res, err := conn.Search(req)
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		l.logger.Warn("ldap: the username matches more than one entry", "connector", l.c.ID)
		return nil, ErrInvalidCredentials
	case ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject):
		return nil, fmt.Errorf("%w: %w", ErrInvalidCredentials, err)
	case err != nil:
		return nil, l.unavailable("search "+base, err)
	case len(res.Entries) != 1:
		return nil, ErrInvalidCredentials
	}
	return res.Entries[0], nil
}

// identity is what entry says, with its groups.
func (l *ldapConnector) identity(conn *ldap.Conn, entry *ldap.Entry) (Identity, error) {
	id := Identity{
		Connector: l.c.ID,
		Subject:   entry.DN,
		Username:  entry.GetAttributeValue(l.c.UserSearch.UsernameAttr),
		Groups:    []string{},
	}
	if a := l.c.UserSearch.EmailAttr; a != "" {
		id.Email = entry.GetAttributeValue(a)
	}
	gs := l.c.GroupSearch
	if gs.BaseDN == "" {
		return id, nil
	}
	filter := fmt.Sprintf("(%s=%s)", gs.MemberAttr, ldap.EscapeFilter(entry.DN))
	if gs.Filter != "" {
		filter = fmt.Sprintf("(&%s%s)", gs.Filter, filter)
	}
	req := ldap.NewSearchRequest(gs.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, []string{gs.NameAttr}, nil)
	res, err := conn.Search(req)
	if err != nil {
		return Identity{}, l.unavailable("group search", err)
	}
	for _, e := range res.Entries {
		if name := e.GetAttributeValue(gs.NameAttr); name != "" {
			id.Groups = append(id.Groups, name)
		}
	}
	return id, nil
}

// unavailable is ErrUnavailable with what failed, for the log: the directory's own words, never
// a password (none is in an LDAP error).
func (l *ldapConnector) unavailable(what string, err error) error {
	return fmt.Errorf("ldap connector %q: %s: %w: %w", l.c.ID, what, err, ErrUnavailable)
}
