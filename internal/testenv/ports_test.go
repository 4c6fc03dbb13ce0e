package testenv

import "testing"

// A port is chosen long before its process listens on it, so the kernel
// may offer it again meanwhile; one test process never gets it twice.
func TestFreePortsNeverHandsOutAPortTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		for _, p := range FreePorts(t, 3) {
			if seen[p] {
				t.Fatalf("port %d handed out twice", p)
			}
			seen[p] = true
		}
	}
}
