package freeport

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Loopback's ports are below the kernel's ephemeral range (read here from the kernel, not
// from EphemeralLow), so a process binding port 0 is never given one, and each can be bound.
func TestLoopbackIsBelowTheEphemeralRange(t *testing.T) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if n, err := strconv.Atoi(strings.Fields(string(b))[0]); err == nil {
			low = n
		}
	}
	if low <= 11000 {
		t.Skipf("the ephemeral range starts at %d: no room below it", low)
	}
	for range 50 {
		port, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		if port < 10000 || port >= low {
			t.Fatalf("Loopback = %d, want one in [10000, %d)", port, low)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("Loopback's %d cannot be bound: %v", port, err)
		}
		ln.Close()
	}
}
