package gateway

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ClientKeys tells which client sent a request, for per-client limits.
//
// By default the gateway is the edge and trusts nothing a client says
// about itself: the key is the TCP peer's address. Behind a load balancer
// or reverse proxy every request would come from the proxy, so the
// proxies' networks can be declared trusted: when, and only when, the
// direct peer is in one of them, X-Forwarded-For is read from the right
// (each proxy appends the address it saw) and the right-most address that
// is not itself a trusted proxy is the client. Anything further left was
// written by the client and could be anything.
//
// An IPv6 client is keyed by its /64, the smallest block a site is
// normally given: keying per address would hand anyone with one
// connection 2^64 fresh buckets.
type ClientKeys struct {
	trusted []netip.Prefix
}

// NewClientKeys returns keys that read X-Forwarded-For only from the
// trustedProxies networks (none: never).
func NewClientKeys(trustedProxies []netip.Prefix) ClientKeys {
	return ClientKeys{trusted: trustedProxies}
}

// ParseTrustedProxies parses a comma-separated list of CIDRs such as
// "10.0.0.0/8, fd00::/8". A bare address is a one-address network.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, field := range strings.Split(list, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		if p, err := netip.ParsePrefix(field); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(field)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither a CIDR (10.0.0.0/8) nor an address", field)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Key returns the client's key: an IPv4 address, or an IPv6 /64 such as
// "2001:db8:1:2::/64".
func (k ClientKeys) Key(r *http.Request) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		// Not a TCP peer (a test, a Unix socket): the address is all we have.
		return r.RemoteAddr
	}
	client := peer.Addr().Unmap()
	if k.isTrusted(client) {
		if forwarded, ok := k.forwardedClient(r.Header.Values("X-Forwarded-For")); ok {
			client = forwarded
		}
	}
	return addrKey(client)
}

// forwardedClient walks X-Forwarded-For from the right past the trusted
// proxies. An entry it cannot parse ends the walk: it was not written by
// a proxy we trust, so no answer is better than a forged one, and the
// caller keeps the peer.
func (k ClientKeys) forwardedClient(headers []string) (netip.Addr, bool) {
	var last netip.Addr
	for i := len(headers) - 1; i >= 0; i-- {
		entries := strings.Split(headers[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			a, ok := parseForwarded(strings.TrimSpace(entries[j]))
			if !ok {
				return netip.Addr{}, false
			}
			if !k.isTrusted(a) {
				return a, true
			}
			last = a
		}
	}
	// Every hop was a trusted proxy: the request started inside, at the
	// left-most one.
	return last, last.IsValid()
}

// parseForwarded reads one X-Forwarded-For entry: an address, possibly
// with a port ("192.0.2.1:443", "[2001:db8::1]:443") as some proxies write.
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

func (k ClientKeys) isTrusted(a netip.Addr) bool {
	for _, p := range k.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrKey is an IPv4 address itself, an IPv6 address its /64.
func addrKey(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}
