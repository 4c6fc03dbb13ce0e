package platform

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/cmd/internal/config"
	"github.com/glasshouse-dev/glasshouse/transport"
)

func parseRemote(t *testing.T, env map[string]string, args ...string) (transport.ClientConfig, error) {
	t.Helper()
	f := config.NewFlags("test", func(k string) string { return env[k] }, io.Discard)
	rf := NewRemoteFlags(f, "inventory", transport.ClientConfig{})
	if err := f.Parse(args); err != nil {
		return transport.ClientConfig{}, err
	}
	return rf.Config()
}

func TestRemoteFlagsDefaultsEnvAndFlags(t *testing.T) {
	cfg, err := parseRemote(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	def := transport.ClientConfig{}.WithDefaults()
	if cfg.MaxAttempts != def.MaxAttempts || cfg.CallTimeout != def.CallTimeout || cfg.Deadline != def.Deadline ||
		cfg.Breaker.ConsecutiveFailures != def.Breaker.ConsecutiveFailures || cfg.Breaker.OpenFor != def.Breaker.OpenFor || cfg.CountAllErrors {
		t.Errorf("defaults %+v, want transport's %+v", cfg, def)
	}

	cfg, err = parseRemote(t, map[string]string{
		"INVENTORY_CLIENT_ATTEMPTS": "1", "INVENTORY_CLIENT_ATTEMPT_TIMEOUT": "250ms", "INVENTORY_CLIENT_DEADLINE": "2s",
		"INVENTORY_CLIENT_BREAKER_FAILURES": "9", "INVENTORY_CLIENT_BREAKER_OPEN": "3s", "INVENTORY_CLIENT_BREAKER_HONEST": "false",
	}, "-inventory-attempts=2") // a flag wins over the environment
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxAttempts != 2 || cfg.CallTimeout != 250*time.Millisecond || cfg.Deadline != 2*time.Second ||
		cfg.Breaker.ConsecutiveFailures != 9 || cfg.Breaker.OpenFor != 3*time.Second || !cfg.CountAllErrors || cfg.Service != "inventory" {
		t.Errorf("parsed %+v", cfg)
	}
}

func TestRemoteFlagsRefuseNonsense(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"INVENTORY_CLIENT_ATTEMPTS": "0"}, "INVENTORY_CLIENT_ATTEMPTS must be at least 1"},
		{map[string]string{"INVENTORY_CLIENT_BREAKER_FAILURES": "0"}, "BREAKER_FAILURES must be at least 1"},
		{map[string]string{"INVENTORY_CLIENT_DEADLINE": "100ms"}, "shorter than one attempt"},
		{map[string]string{"INVENTORY_CLIENT_BREAKER_OPEN": "-1s"}, "must be positive"},
		{map[string]string{"INVENTORY_CLIENT_ATTEMPTS": "many"}, "is not an integer"},
	} {
		_, err := parseRemote(t, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one saying %q", tc.env, err, tc.want)
		}
	}
}
