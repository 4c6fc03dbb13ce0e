package gateway

import (
	"net/http/httptest"
	"testing"
)

func TestClientKey(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, fd00::/8, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		trusted bool // behind the trusted proxies above, or none
		peer    string
		xff     []string
		want    string
	}{
		{"IPv4 peer is its address", false, "198.51.100.4:40000", nil, "198.51.100.4"},
		{"IPv6 peer is its /64", false, "[2001:db8:1:2:aaaa::1]:40000", nil, "2001:db8:1:2::/64"},
		{"two addresses of one /64 share a key", false, "[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", nil, "2001:db8:1:2::/64"},
		{"IPv4-mapped IPv6 is IPv4", false, "[::ffff:198.51.100.4]:40000", nil, "198.51.100.4"},
		{"zoned link-local is its /64", false, "[fe80::1%eth0]:40000", nil, "fe80::/64"},
		{"not a TCP address is kept as is", false, "pipe", nil, "pipe"},
		{"no trusted proxies: X-Forwarded-For is ignored", false, "10.1.2.3:40000", []string{"203.0.113.9"}, "10.1.2.3"},
		{"untrusted peer: X-Forwarded-For is ignored", true, "198.51.100.4:40000", []string{"203.0.113.9"}, "198.51.100.4"},
		{"trusted peer: the forwarded client", true, "10.1.2.3:40000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"trusted peer, no header: the peer", true, "10.1.2.3:40000", nil, "10.1.2.3"},
		{"right-most untrusted entry, not the forged left one", true, "10.1.2.3:40000",
			[]string{"1.1.1.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"entries across several headers", true, "10.1.2.3:40000",
			[]string{"1.1.1.1, 203.0.113.9", "192.0.2.7"}, "203.0.113.9"},
		{"a forwarded IPv6 client is its /64", true, "[fd00::5]:40000",
			[]string{"2001:db8:7:8::99"}, "2001:db8:7:8::/64"},
		{"an entry with a port", true, "10.1.2.3:40000", []string{"203.0.113.9:5555"}, "203.0.113.9"},
		{"a bracketed IPv6 entry with a port", true, "10.1.2.3:40000", []string{"[2001:db8:7:8::99]:443"}, "2001:db8:7:8::/64"},
		{"garbage before any untrusted entry: the peer", true, "10.1.2.3:40000",
			[]string{"203.0.113.9, not-an-ip, 10.9.9.9"}, "10.1.2.3"},
		{"garbage left of the client does not matter", true, "10.1.2.3:40000",
			[]string{"not-an-ip, 203.0.113.9"}, "203.0.113.9"},
		{"every hop trusted: the left-most", true, "10.1.2.3:40000",
			[]string{"10.7.7.7, 10.8.8.8"}, "10.7.7.7"},
		{"empty header: the peer", true, "10.1.2.3:40000", []string{""}, "10.1.2.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys := NewClientKeys(nil)
			if tc.trusted {
				keys = NewClientKeys(trusted)
			}
			r := httptest.NewRequest("GET", "/api/products", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := keys.Key(r); got != tc.want {
				t.Errorf("key = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies(" 10.1.2.3/8 ,, 2001:db8::1, ::ffff:192.0.2.1 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "2001:db8::1/128", "192.0.2.1/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, got[i], want[i])
		}
	}
	if none, err := ParseTrustedProxies(""); err != nil || len(none) != 0 {
		t.Errorf("empty list: %v, %v; want none", none, err)
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8,10.0.0.0/33"); err == nil {
		t.Error("an invalid CIDR was accepted")
	}
	if _, err := ParseTrustedProxies("proxy.internal"); err == nil {
		t.Error("a host name was accepted")
	}
}
