package auth

import (
	"context"
	"testing"
	"time"

	"jwtidp/idp/identity"
)

// The garbage collector keeps the audit trail for AuditRetention of the service's clock and
// removes what is older; 0 keeps everything.
func TestAuditRetentionOnTheCollector(t *testing.T) {
	svc, db, c := newService(t)
	svc.Audit, svc.AuditRetention = db, 90*24*time.Hour
	ctx := context.Background()
	if err := svc.Signup(ctx, "old", "correct-horse-9", ""); err != nil { // an event now
		t.Fatal(err)
	}
	c.add(60 * 24 * time.Hour)
	if err := svc.Signup(ctx, "newer", "correct-horse-9", ""); err != nil { // 60 days later
		t.Fatal(err)
	}
	c.add(31 * 24 * time.Hour) // the first is 91 days old, the second 31
	collect := func() {
		gcCtx, stop := context.WithCancel(ctx)
		done, ticks := make(chan struct{}), make(chan time.Time)
		go func() { svc.collectOn(gcCtx, ticks); close(done) }()
		ticks <- c.now()
		ticks <- c.now() // taken once the first collection has finished
		stop()
		<-done
	}
	list := func() []identity.AuditEvent {
		ev, err := svc.AuditEvents(ctx, identity.AuditQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	svc.AuditRetention = 0
	collect()
	if n := len(list()); n != 2 {
		t.Fatalf("retention 0 keeps everything: %d events, want 2", n)
	}
	svc.AuditRetention = 90 * 24 * time.Hour
	collect()
	if ev := list(); len(ev) != 1 || ev[0].Type != identity.AuditSignup || !ev[0].Time.Equal(c.now().Add(-31*24*time.Hour)) {
		t.Fatalf("after the collector: %+v, want the 31-day-old signup alone", ev)
	}
}
