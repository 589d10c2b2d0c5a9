package proctest

import (
	"strings"
	"testing"
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
