// Package freeport finds a port on 127.0.0.1 for a server that must be told its port before it
// starts (nginx, Apache, a redirect URI naming it), in tests and in the bench.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Loopback is a port on 127.0.0.1 that nothing listens on now. It is picked below the kernel's
// ephemeral range: a port taken from bind(":0") and closed again can be handed to the next
// process that binds port 0 — a service started in between, which once answered in nginx's
// place — while a port below that range is never given out that way. Picks are random, so
// callers running in parallel rarely try the same one, and each is tried by binding it.
func Loopback() (int, error) {
	low := EphemeralLow()
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port on 127.0.0.1 between 10000 and %d", low)
}

// LoopbackAddr is Loopback as host:port.
func LoopbackAddr() (string, error) {
	port, err := Loopback()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// EphemeralLow is the first port of Linux's ephemeral range (ip_local_port_range), or 32768,
// its default, where that cannot be read (other systems' ranges start higher). A range that
// starts at 11000 or below leaves no room under it: Loopback then picks from 10000–32767, as
// it would on a default Linux, and may meet bind(":0")'s picks.
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 11000 {
		return 32768
	}
	return low
}
