package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Slapd is an OpenLDAP server the test started: its own slapd.conf, mdb data folder and
// loopback port under t.TempDir(), seeded over LDAP with ldapadd (SlapdSeed), stopped when the
// test ends.
//
// The directory (suffix SlapdSuffix):
//
//	cn=jwtidp,ou=services   the service account (SlapdServiceDN, SlapdServicePassword): reads everything
//	uid=alice,ou=people     Alice Liddell, alice@example.com, password SlapdAlicePassword; in devs and ops
//	uid=bob,ou=people       Bob Builder, bob@example.com, password SlapdBobPassword; in devs
//	cn=devs,ou=groups       groupOfNames: alice, bob
//	cn=ops,ou=groups        groupOfNames: alice
type Slapd struct {
	URL  string // ldap://127.0.0.1:PORT
	Addr string
	// StartSlapdTLS only: the same directory over ldaps:// (LDAPS, LDAPSAddr), StartTLS on URL,
	// and the CA that signed slapd's certificate for 127.0.0.1 and localhost (CA.CertFile).
	LDAPS     string
	LDAPSAddr string
	CA        *TestCA
	t         testing.TB
	bin       string
	dir       string
	conf      string
	cmd       *exec.Cmd
	done      chan struct{}
	log       *LogBuffer
}

// The seeded directory's names and secrets.
const (
	SlapdSuffix          = "dc=example,dc=com"
	SlapdAdminDN         = "cn=admin,dc=example,dc=com"
	SlapdAdminPassword   = "slapd-admin-secret-1"
	SlapdServiceDN       = "cn=jwtidp,ou=services,dc=example,dc=com"
	SlapdServicePassword = "slapd-service-secret-2"
	SlapdAliceDN         = "uid=alice,ou=people,dc=example,dc=com"
	SlapdAlicePassword   = "alice-ldap-password-3"
	SlapdBobDN           = "uid=bob,ou=people,dc=example,dc=com"
	SlapdBobPassword     = "bob-ldap-password-4"
)

// SlapdSeed is the LDIF StartSlapd adds.
const SlapdSeed = `dn: dc=example,dc=com
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=com
objectClass: organizationalUnit
ou: services

dn: cn=jwtidp,ou=services,dc=example,dc=com
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: jwtidp
userPassword: ` + SlapdServicePassword + `

dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
mail: alice@example.com
userPassword: ` + SlapdAlicePassword + `

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@example.com
userPassword: ` + SlapdBobPassword + `

dn: cn=devs,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,dc=example,dc=com
member: uid=bob,ou=people,dc=example,dc=com

dn: cn=ops,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: ops
member: uid=alice,ou=people,dc=example,dc=com
`

const slapdConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {{DIR}}/slapd.pid
argsfile {{DIR}}/slapd.args

database mdb
maxsize 16777216
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw {{ROOTPW}}
directory {{DIR}}/data

# Passwords: checked by a bind, read by nobody. The rest: the service account and the entry
# itself read; anonymous gets nothing, so a connector must bind first.
access to attrs=userPassword
	by self =x
	by anonymous auth
	by * none
access to *
	by dn.exact="cn=jwtidp,ou=services,dc=example,dc=com" read
	by self read
	by * none
`

const slapdTLSConf = `
TLSCACertificateFile {{CA}}
TLSCertificateFile {{CERT}}
TLSCertificateKeyFile {{KEY}}
`

// StartSlapd starts slapd with the seed above. It skips (or fails under
// JWTIDP_REQUIRE_INTEGRATION) when slapd or ldapadd is missing.
func StartSlapd(t testing.TB) *Slapd {
	t.Helper()
	return startSlapd(t, false)
}

// StartSlapdTLS is StartSlapd with TLS: a throwaway CA (s.CA) signs slapd's certificate for
// 127.0.0.1 and localhost; slapd offers StartTLS on s.URL and listens on s.LDAPS too. Plain
// ldap:// without StartTLS still works (the seed and the client tools use it).
func StartSlapdTLS(t testing.TB) *Slapd {
	t.Helper()
	return startSlapd(t, true)
}

func startSlapd(t testing.TB, withTLS bool) *Slapd {
	t.Helper()
	bin := "/usr/sbin/slapd"
	if _, err := os.Stat(bin); err != nil {
		bin = Need(t, "slapd")
	}
	Need(t, "ldapadd")
	Secret(SlapdAdminPassword, SlapdServicePassword, SlapdAlicePassword, SlapdBobPassword)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{DIR}}", dir, "{{ROOTPW}}", SlapdAdminPassword).Replace(slapdConf)
	s := &Slapd{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "slapd.conf"), log: &LogBuffer{}}
	if withTLS {
		s.CA = NewTestCA(t, "slapd test CA")
		cert, key := s.CA.Issue(t, "127.0.0.1", "localhost")
		// TLS settings are global: they go before the database section.
		tlsConf := strings.NewReplacer("{{CA}}", s.CA.CertFile, "{{CERT}}", cert, "{{KEY}}", key).Replace(slapdTLSConf)
		conf = strings.Replace(conf, "\ndatabase mdb\n", tlsConf+"\ndatabase mdb\n", 1)
		s.LDAPSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
		s.LDAPS = "ldaps://" + s.LDAPSAddr
	}
	if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
	s.URL = "ldap://" + s.Addr
	RememberLog("slapd", s.log.String)
	t.Cleanup(s.kill)
	s.Start()
	s.LDAP(t, "ldapadd", SlapdSeed)
	return s
}

// Start starts slapd again after Stop, on the same port and data.
func (s *Slapd) Start() {
	s.t.Helper()
	if s.running() {
		s.t.Fatal("slapd: Start while it runs")
	}
	// -d keeps slapd in the foreground (its process is the test's to stop); level stats logs
	// each connection and operation (never a password: a bind is its DN and method), which
	// Binds counts.
	urls := s.URL + "/"
	if s.LDAPS != "" {
		urls += " " + s.LDAPS + "/"
	}
	cmd := exec.Command(s.bin, "-d", "stats", "-f", s.conf, "-h", urls)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("slapd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	up := Eventually(30*time.Second, func() bool {
		return !s.running() || (Listening(s.Addr, 100*time.Millisecond) && (s.LDAPSAddr == "" || Listening(s.LDAPSAddr, 100*time.Millisecond)))
	})
	switch {
	case !s.running():
		s.t.Fatalf("slapd exited before listening: %v\n%s", cmd.ProcessState, s.log.String())
	case !up:
		s.kill()
		s.t.Fatalf("slapd did not listen on %s within 30s\n%s", s.Addr, s.log.String())
	}
}

// Stop stops slapd (SIGTERM) and waits until it has exited: its port then refuses connections.
func (s *Slapd) Stop() {
	s.t.Helper()
	if !s.running() {
		s.t.Fatal("slapd: Stop while it is not running")
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.kill()
		s.t.Fatalf("slapd did not exit within 20s of SIGTERM\n%s", s.log.String())
	}
}

// LDAP runs an OpenLDAP client tool (ldapadd, ldapmodify, ldapdelete) as the directory's
// admin with input on its standard input, failing the test when it fails.
func (s *Slapd) LDAP(t testing.TB, tool, input string, args ...string) {
	t.Helper()
	path := Need(t, tool)
	pw := filepath.Join(s.dir, "admin.pw")
	if err := os.WriteFile(pw, []byte(SlapdAdminPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, append([]string{"-x", "-H", s.URL, "-D", SlapdAdminDN, "-y", pw}, args...)...)
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(input)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s\nslapd:\n%s", tool, err, out, s.log.String())
	}
}

// Delete removes the entry dn (ldapdelete).
func (s *Slapd) Delete(t testing.TB, dn string) {
	t.Helper()
	s.LDAP(t, "ldapdelete", dn+"\n")
}

// Binds is how many bind requests slapd has received so far, whatever their outcome: each is a
// password sent to it (slapd logs `conn=N op=N BIND dn="…" method=128` as it reads one).
func (s *Slapd) Binds() int {
	n := 0
	for _, line := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(line, " BIND dn=") && strings.Contains(line, " method=") {
			n++
		}
	}
	return n
}

// Log is what slapd has printed so far.
func (s *Slapd) Log() string { return s.log.String() }

func (s *Slapd) running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Slapd) kill() {
	if s.running() {
		s.cmd.Process.Kill()
		<-s.done
	}
}

func (s *Slapd) String() string { return fmt.Sprintf("slapd at %s", s.URL) }
