package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"jwtidp/idp/identity"
	"jwtidp/shared/apperr"
)

// mail is a valid message with every field set, queued i seconds after t0.
func mail(id string, i int) identity.Mail {
	return identity.Mail{ID: id, To: "Alice <alice@example.com>", Subject: "Subject of " + id, Text: "text of " + id,
		HTML: "<p>html of " + id + "</p>", Kind: "notice", UserID: "u1", CreatedAt: t0.Add(time.Duration(i) * time.Second)}
}

// later is long after every message the suite queues is due.
var later = t0.Add(24 * time.Hour)

// claim is ClaimMail at now with a minute's lease, which must find a message.
func claim(t *testing.T, s Store, now time.Time) identity.Mail {
	t.Helper()
	m, err := s.ClaimMail(ctx, now, time.Minute)
	check(t, err)
	return m
}

// noneDue checks that nothing is due at now.
func noneDue(t *testing.T, s Store, what string, now time.Time) {
	t.Helper()
	m, err := s.ClaimMail(ctx, now, time.Minute)
	wantCode(t, what+": ClaimMail", err, apperr.ENOTFOUND)
	equal(t, what+": what ClaimMail returns", m, identity.Mail{})
}

// queued is the ids of every queued message, oldest first, each claimed once more at later
// (which changes their attempts and leases: a test's last look).
func queued(t *testing.T, s Store) []string {
	t.Helper()
	out := []string{}
	for {
		m, err := s.ClaimMail(ctx, later, time.Hour)
		if apperr.Code(err) == apperr.ENOTFOUND {
			return out
		}
		check(t, err)
		if slices.Contains(out, m.ID) {
			t.Fatalf("mail %s claimed twice during its lease (claimed so far: %v)", m.ID, out)
		}
		out = append(out, m.ID)
	}
}

func wantQueue(t *testing.T, what string, s Store, n int, oldest time.Time) {
	t.Helper()
	gotN, gotOldest, err := s.MailQueue(ctx)
	check(t, err)
	if gotN != n || !gotOldest.Equal(oldest) || gotOldest.Location() != time.UTC {
		t.Fatalf("%s: MailQueue = %d, %v; want %d, %v (UTC)", what, gotN, gotOldest, n, oldest)
	}
}

// Claims come oldest first, only when due and not leased; each counts an attempt and leases
// the message; MailFailed reschedules, MailSent and DropMail remove.
func testClaimMail(t *testing.T, s Store) {
	noneDue(t, s, "an empty outbox", later)
	wantQueue(t, "an empty outbox", s, 0, time.Time{})
	_, err := s.ClaimMail(ctx, t0, 0)
	wantCode(t, "ClaimMail with no lease", err, apperr.EINVALID)

	// b and a queued at the same second (a first: by id), c later, w waiting until t0+1h;
	// given in another zone, read back in UTC.
	a, b, c, w := mail("a", 1), mail("b", 1), mail("c", 3), mail("w", 0)
	w.NextAttemptAt, w.Attempts, w.LastError = t0.Add(time.Hour).In(zone), 2, "421 busy"
	for _, m := range []*identity.Mail{&a, &b, &c, &w} {
		m.CreatedAt = m.CreatedAt.In(zone)
	}
	b.HTML, b.UserID = "", ""
	check(t, s.EnqueueMail(ctx, c, b))
	check(t, s.EnqueueMail(ctx, w, a))
	check(t, s.EnqueueMail(ctx)) // nothing to queue is no error
	wantQueue(t, "four queued", s, 4, t0)

	now := t0.Add(10 * time.Second)
	for _, want := range []identity.Mail{a, b, c} {
		want.CreatedAt, want.Attempts, want.LeaseUntil = want.CreatedAt.UTC(), 1, now.Add(time.Minute)
		equal(t, "the claim of "+want.ID, claim(t, s, now.In(zone)), want)
	}
	noneDue(t, s, "w not due, the rest leased", now)
	wantQueue(t, "four queued, three leased", s, 4, t0)
	noneDue(t, s, "a second before the leases end", now.Add(time.Minute-time.Microsecond))

	// A lease that ran out: claimed again, a second attempt.
	now = now.Add(time.Minute)
	again := claim(t, s, now)
	want := a
	want.CreatedAt, want.Attempts, want.LeaseUntil = a.CreatedAt.UTC(), 2, now.Add(time.Minute)
	equal(t, "a claimed again once its lease ran out", again, want)

	// b failed: no lease, next attempt at t0+2h, the reason kept to MaxMailError bytes.
	reason := strings.Repeat("é", identity.MaxMailError) // two bytes each
	check(t, s.MailFailed(ctx, "b", t0.Add(2*time.Hour).In(zone), reason))
	// c sent; its sender's lease is irrelevant now.
	check(t, s.MailSent(ctx, "c"))
	wantQueue(t, "c sent", s, 3, t0)
	noneDue(t, s, "b waiting, a leased", now.Add(30*time.Second))

	// At t0+1h, w is due and comes first (the oldest), then a (lease over); b waits.
	now = t0.Add(time.Hour)
	want = w
	want.CreatedAt, want.NextAttemptAt, want.Attempts, want.LeaseUntil = t0, t0.Add(time.Hour), 3, now.Add(time.Minute)
	equal(t, "w at its next attempt", claim(t, s, now), want)
	check(t, s.DropMail(ctx, "w")) // given up on after its third attempt
	// a leased for two hours: it is not due again before the end.
	got, err := s.ClaimMail(ctx, now, 2*time.Hour)
	check(t, err)
	equal(t, "a after w", got.ID, "a")
	noneDue(t, s, "b before its next attempt", now)
	now = t0.Add(2 * time.Hour)
	want = b
	want.CreatedAt, want.NextAttemptAt, want.Attempts, want.LeaseUntil = b.CreatedAt.UTC(), t0.Add(2*time.Hour), 2, now.Add(time.Minute)
	want.LastError = strings.Repeat("é", identity.MaxMailError/2)
	equal(t, "b at its next attempt", claim(t, s, now), want)

	// MailFailed with no next time: due at once, whatever the lease said.
	check(t, s.MailFailed(ctx, "b", time.Time{}, "bad\x00\xff"))
	want.NextAttemptAt, want.LeaseUntil, want.LastError, want.Attempts = time.Time{}, now.Add(time.Minute), "bad\uFFFD\uFFFD", 3
	equal(t, "b failed with no next time", claim(t, s, now), want)

	for name, f := range map[string]func(string) error{
		"MailSent":   func(id string) error { return s.MailSent(ctx, id) },
		"DropMail":   func(id string) error { return s.DropMail(ctx, id) },
		"MailFailed": func(id string) error { return s.MailFailed(ctx, id, later, "x") },
	} {
		for _, id := range []string{"c", "w", "nobody", "", "bad\x00id"} {
			wantCode(t, fmt.Sprintf("%s(%q), not queued", name, id), f(id), apperr.ENOTFOUND)
		}
	}
	wantQueue(t, "a and b left", s, 2, t0.Add(time.Second))
	equal(t, "what is left", queued(t, s), []string{"a", "b"})
	check(t, s.MailSent(ctx, "a"))
	check(t, s.MailSent(ctx, "b"))
	wantQueue(t, "all sent", s, 0, time.Time{})
	noneDue(t, s, "all sent", later.Add(time.Hour))
}

// EnqueueMail refuses, and queues nothing of, a batch with a message that breaks Validate or
// whose id is queued.
func testEnqueueMailRefusals(t *testing.T, s Store) {
	check(t, s.EnqueueMail(ctx, mail("m1", 0)))
	for name, bad := range map[string]func(*identity.Mail){
		"no id":            func(m *identity.Mail) { m.ID = "" },
		"no recipient":     func(m *identity.Mail) { m.To = "" },
		"a CR in To":       func(m *identity.Mail) { m.To = "a@example.com\rBcc: b@example.com" },
		"a LF in Subject":  func(m *identity.Mail) { m.Subject = "hi\nBcc: b@example.com" },
		"a long To":        func(m *identity.Mail) { m.To = strings.Repeat("a", identity.MaxMailTo+1) },
		"a long subject":   func(m *identity.Mail) { m.Subject = strings.Repeat("a", identity.MaxMailSubject+1) },
		"a long text body": func(m *identity.Mail) { m.Text = strings.Repeat("a", identity.MaxMailBody+1) },
		"a long HTML body": func(m *identity.Mail) { m.HTML = strings.Repeat("a", identity.MaxMailBody+1) },
		"no kind":          func(m *identity.Mail) { m.Kind = "" },
		"no creation time": func(m *identity.Mail) { m.CreatedAt = time.Time{} },
		"invalid UTF-8":    func(m *identity.Mail) { m.Text = "\xff" },
		"a NUL":            func(m *identity.Mail) { m.HTML = "a\x00b" },
	} {
		m := mail("m2", 1)
		bad(&m)
		wantCode(t, "EnqueueMail of a message with "+name, s.EnqueueMail(ctx, mail("m3", 2), m), apperr.EINVALID)
	}
	wantCode(t, "EnqueueMail of a queued id", s.EnqueueMail(ctx, mail("m3", 2), mail("m1", 3)), apperr.ECONFLICT)
	wantCode(t, "EnqueueMail of one id twice", s.EnqueueMail(ctx, mail("m4", 2), mail("m4", 3)), apperr.ECONFLICT)
	wantQueue(t, "after the refusals", s, 1, t0)
	equal(t, "queued after the refusals", queued(t, s), []string{"m1"})
}

// Every write queues the mail of its context with its change, once; a write that fails or
// changes nothing queues none; a message that breaks Validate fails the write.
func testMailWithTheChange(t *testing.T, s Store) {
	users(t, s, "u1", "u2")
	create(t, s.CreateFamily, family("f1", "u1", "r0"))
	setPassword := func(u identity.User) (identity.User, error) { u.PasswordHash = "changed"; return u, nil }
	writes := []struct {
		name  string
		write func(context.Context) error
	}{
		{"CreateUser", func(c context.Context) error { return s.CreateUser(c, user("u3")) }},
		{"UpdateUser", func(c context.Context) error { return second(s.UpdateUser(c, "u2", setPassword)) }},
		{"ChangeCredentials", func(c context.Context) error {
			return second(s.ChangeCredentials(c, "u2", func(u identity.User) (identity.User, error) { u.PasswordHash = "again"; return u, nil }))
		}},
		{"UpdateFamilyByToken", func(c context.Context) error {
			return second(s.UpdateFamilyByToken(c, "r0", func(f identity.Family, u identity.User) (identity.Family, error) {
				return f.Refresh("r0", "r1", u, t0)
			}))
		}},
		{"CreateCode", func(c context.Context) error { return s.CreateCode(c, code("c1", "u1", "grafana")) }},
		{"CreateSession", func(c context.Context) error { return s.CreateSession(c, session("s1", "u1", 0)) }},
		{"CreateGroup", func(c context.Context) error { return s.CreateGroup(c, group("ops")) }},
		{"AppendAudit", func(c context.Context) error { return s.AppendAudit(c, auditEvent(1, identity.AuditLogin, "u1")) }},
		{"AppendAudit of no event", func(c context.Context) error { return s.AppendAudit(c) }},
		{"EnqueueMail", func(c context.Context) error { return s.EnqueueMail(c, mail("m09-explicit", 9)) }},
		{"DeleteUser", func(c context.Context) error { return s.DeleteUser(c, "u3") }},
	}
	var want []string
	for i, w := range writes {
		id := fmt.Sprintf("m%02d", i)
		check(t, w.write(identity.WithMail(ctx, mail(id, i))))
		want = append(want, id)
		if w.name == "EnqueueMail" { // its own message, after the context's (the same time, a larger id)
			want = append(want, "m09-explicit")
		}
		wantQueue(t, "after "+w.name, s, len(want), t0)
	}
	// Without mail in the context, a write queues none.
	check(t, s.CreateUser(ctx, user("u4")))
	equal(t, "the mail queued by the writes", queued(t, s), want)
	for _, id := range want {
		check(t, s.MailSent(ctx, id))
	}

	// Mail known only once the updater ran: queued as the last run left it.
	var decided string
	runs := 0
	c := identity.WithMailFunc(ctx, func() []identity.Mail {
		m := mail("decided", 0)
		m.Subject = decided
		return []identity.Mail{m, mail("second", 1)}
	})
	check(t, second(s.UpdateUser(c, "u1", func(u identity.User) (identity.User, error) {
		runs++
		decided = fmt.Sprintf("run %d", runs)
		return setPassword(u)
	})))
	m := claim(t, s, later)
	equal(t, "the decided message's subject", m.Subject, fmt.Sprintf("run %d", runs))
	equal(t, "the second message", claim(t, s, later).ID, "second")
	check(t, s.MailSent(ctx, "decided"))
	check(t, s.MailSent(ctx, "second"))

	// Nothing changes, nothing is queued: an updater that fails, one that finds nothing to
	// change, a refusal of the store.
	u1 := getUser(t, s, "u1")
	with := identity.WithMail(ctx, mail("never", 0))
	_, err := s.UpdateUser(with, "u1", func(u identity.User) (identity.User, error) { u.Admin = true; return u, errBoom })
	wantIs(t, "a failing updater", err, errBoom)
	_, err = s.UpdateUser(with, "u1", func(u identity.User) (identity.User, error) { return u.SetAdmin(false) })
	wantIs(t, "an updater with nothing to change", err, identity.ErrUnchanged)
	wantCode(t, "CreateUser of a taken id", s.CreateUser(with, user("u1")), apperr.ECONFLICT)
	wantCode(t, "DeleteUser of no user", s.DeleteUser(with, "nobody"), apperr.ENOTFOUND)
	_, err = s.UpdateFamilyByToken(with, "r1", func(identity.Family, identity.User) (identity.Family, error) {
		return identity.Family{}, errPeek
	})
	wantIs(t, "a refresh step that keeps nothing", err, errPeek)
	wantCode(t, "AppendAudit of an invalid event", s.AppendAudit(with, identity.AuditEvent{Type: identity.AuditLogin}), apperr.EINVALID)
	wantQueue(t, "after the writes that changed nothing", s, 0, time.Time{})

	// A message that breaks Validate, or whose id is queued, fails the write: the change is
	// not kept.
	check(t, s.EnqueueMail(ctx, mail("taken", 0)))
	invalid := mail("invalid", 0)
	invalid.Subject = "hi\r\nBcc: everyone@example.com"
	refused := func(u identity.User) (identity.User, error) { u.PasswordHash = "refused"; return u, nil }
	for _, tt := range []struct {
		name string
		c    context.Context
		want string
	}{
		{"an invalid message", identity.WithMail(ctx, mail("ok", 0), invalid), apperr.EINVALID},
		{"a queued id", identity.WithMail(ctx, mail("ok", 0), mail("taken", 1)), apperr.ECONFLICT},
	} {
		c, name := tt.c, tt.name
		_, err = s.UpdateUser(c, "u1", refused)
		wantCode(t, "an update with "+name, err, tt.want)
		_, err = s.ChangeCredentials(c, "u1", refused)
		wantCode(t, "a credential change with "+name, err, tt.want)
		wantCode(t, "a signup with "+name, s.CreateUser(c, user("u5")), tt.want)
		wantCode(t, "a code with "+name, s.CreateCode(c, code("c2", "u1", "grafana")), tt.want)
		_, err = s.UpdateFamilyByToken(c, "r1", func(f identity.Family, u identity.User) (identity.Family, error) {
			return f.Refresh("r1", "r2", u, t0)
		})
		wantCode(t, "a refresh with "+name, err, tt.want)
		wantCode(t, "an audit event with "+name, s.AppendAudit(c, auditEvent(2, identity.AuditLogin, "u1")), tt.want)
		wantCode(t, "EnqueueMail with "+name, s.EnqueueMail(c, mail("explicit-2", 0)), tt.want)
	}
	equal(t, "u1 after the refused writes", getUser(t, s, "u1"), u1)
	_, err = s.GetUser(ctx, "u5")
	wantCode(t, "a user created with a refused message", err, apperr.ENOTFOUND)
	noCode(t, s, "a code created with a refused message", "c2")
	f, _ := peek(t, s, "r1")
	equal(t, "the family's token after the refused refreshes", f.Current, "r1")
	equal(t, "the audit events after the refused writes", details(allAudit(t, s)), []string{"event 1"})
	equal(t, "queued after the refused writes", queued(t, s), []string{"taken"})
}

// Claims at once, from many goroutines (connections, for a shared database), get each message
// exactly once while the leases run.
func testConcurrentClaimMail(t *testing.T, s Store) {
	const messages, claimers = 40, 8
	var all []identity.Mail
	for i := range messages {
		all = append(all, mail(fmt.Sprintf("m%02d", i), i%7))
	}
	check(t, s.EnqueueMail(ctx, all...))
	now := t0.Add(time.Hour)
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, claimers)
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := s.ClaimMail(ctx, now, time.Hour)
				if apperr.Code(err) == apperr.ENOTFOUND {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if m.Attempts != 1 {
					errs <- fmt.Errorf("mail %s claimed with %d attempts, want 1", m.ID, m.Attempts)
					return
				}
				mu.Lock()
				got[m.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, m := range all {
		if got[m.ID] != 1 {
			t.Fatalf("mail %s claimed %d times, want once (claims: %v)", m.ID, got[m.ID], got)
		}
	}
	equal(t, "messages claimed", len(got), messages)
	noneDue(t, s, "every message leased", now.Add(time.Hour-time.Microsecond))
	wantQueue(t, "every message leased", s, messages, t0)
	equal(t, "claimed again once the leases ran out", len(queued(t, s)), messages)
}
