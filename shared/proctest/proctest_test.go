package proctest

import (
	"strings"
	"testing"
	"time"
)

// A log added with RememberLog (an in-process service's) is searched like a binary's.
func TestLeakedSecretsSearchesRememberedLogs(t *testing.T) {
	log := "time=… msg=login user=alice\n"
	RememberLog("idp (in-process)", func() string { return log })
	Secret("hunter2-hunter2", "short") // too short to search: ignored
	if leaks := LeakedSecrets(); len(leaks) != 0 {
		t.Fatalf("leaks in a clean log: %v", leaks)
	}
	log += "msg=oops password=hunter2-hunter2\n"
	leaks := LeakedSecrets()
	if len(leaks) != 1 || !strings.Contains(leaks[0], "idp (in-process)") || strings.Contains(leaks[0], "hunter2-hunter2") {
		t.Fatalf("leaks %q: want one naming the log, without the whole secret", leaks)
	}
	registry.Lock()
	registry.logs = nil // the package's own TestMain-less run checks nothing after this
	registry.Unlock()
}

// WaitLog wakes on the line it waits for, written after its first look, looks again only then,
// and reports a line that never comes as false; a Write wakes it as a WriteLine does.
func TestWaitLogWakesOnALine(t *testing.T) {
	p := &Proc{log: &LogBuffer{}}
	p.log.WriteLine("msg=listening")
	looks := 0
	done := func(log string) bool {
		looks++
		if looks == 1 { // the line comes after the first look, as from the process's pipe
			p.log.WriteLine("msg=done")
		}
		return strings.Contains(log, "msg=done")
	}
	if !p.WaitLog(10*time.Second, done) || looks != 2 {
		t.Fatalf("WaitLog: %d looks, want 2 (one before the line, one after it)", looks)
	}
	if p.WaitLog(time.Millisecond, func(log string) bool { return strings.Contains(log, "msg=never") }) {
		t.Fatal("WaitLog reported a line that was never written")
	}
	// An in-process service's logger writes through Write, which wakes a wait as well.
	looks = 0
	written := func(log string) bool {
		looks++
		if looks == 1 {
			p.log.Write([]byte("msg=written\n"))
		}
		return strings.Contains(log, "msg=written")
	}
	if !p.log.Wait(10*time.Second, written) || looks != 2 {
		t.Fatalf("Wait after a Write: %d looks, want 2", looks)
	}
}
