// Package clientip keys a client's address for counting: the rate limiter's buckets and the
// sign-in throttle's counters alike.
package clientip

import "net/netip"

// Key is what counts a client's requests together: an IPv4 address itself, an IPv6 address's /64
// (one host is routinely given a whole /64, so its addresses are one client). Anything that is
// not an address is its own key.
func Key(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
