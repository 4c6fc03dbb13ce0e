package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestProbePassesOnlyOn2xx(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if err := cmdProbe(context.Background(), []string{srv.URL + "/readyz"}, nil, io.Discard); err != nil {
		t.Errorf("probe of a ready server: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := cmdProbe(context.Background(), []string{srv.URL + "/readyz"}, nil, io.Discard); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("probe of an unready server: %v, want a 503 error", err)
	}
	srv.Close()
	if err := cmdProbe(context.Background(), []string{srv.URL}, nil, io.Discard); err == nil {
		t.Error("probe of a closed port succeeded")
	}
}
