package storage_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The pool's stats and every call's duration reach the registry the DB's
// collectors are registered on: one exec, one query and one transaction
// (with a statement inside) add one observation each to their operation.
func TestCollectorsReportThePoolAndEachCall(t *testing.T) {
	testenv.OnEachBackend(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		db := open(t, b.NewDatabase(t), testMigrations)
		reg := prometheus.NewRegistry()
		reg.MustRegister(db.Collectors("notes")...)
		before := callCounts(t, reg)

		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO notes (id, body, at) VALUES ($1, $2, $3)`, "n1", "hello", 1); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM notes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := db.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE notes SET body = $1 WHERE id = $2`, "bye", "n1")
			return err
		}); err != nil {
			t.Fatal(err)
		}

		after := callCounts(t, reg)
		for op, want := range map[string]uint64{"exec": 2, "query": 1, "tx": 1} {
			if got := after[op] - before[op]; got != want {
				t.Errorf("operation %s: %d new observations, want %d", op, got, want)
			}
		}
		open := gauge(t, reg, "go_sql_open_connections", "notes")
		if open < 1 {
			t.Errorf("go_sql_open_connections{db_name=\"notes\"} = %v, want at least the connection just used", open)
		}
	})
}

// callCounts is glasshouse_db_query_duration_seconds' count by operation.
func callCounts(t *testing.T, reg *prometheus.Registry) map[string]uint64 {
	t.Helper()
	counts := map[string]uint64{}
	for _, m := range family(t, reg, "glasshouse_db_query_duration_seconds").GetMetric() {
		counts[label(m, "operation")] = m.GetHistogram().GetSampleCount()
	}
	return counts
}

func gauge(t *testing.T, reg *prometheus.Registry, name, dbName string) float64 {
	t.Helper()
	for _, m := range family(t, reg, name).GetMetric() {
		if label(m, "db_name") == dbName {
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s{db_name=%q}", name, dbName)
	return 0
}

func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("no %s among the gathered metrics", name)
	return nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
