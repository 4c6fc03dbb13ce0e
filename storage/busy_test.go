package storage

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

func TestABusyDatabaseIsToldFromOtherErrors(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "busy.db")+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(2)
	ctx := context.Background()
	holder, err := db.BeginTx(ctx, nil) // takes the write lock
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	_, err = db.BeginTx(ctx, nil)
	if !isBusy(err) {
		t.Errorf("a second writer with no busy timeout got %v; want SQLITE_BUSY", err)
	}
	if isBusy(errors.New("database is locked")) || isBusy(nil) {
		t.Error("isBusy matches an error that is not SQLite's")
	}
}
