package storage_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/glasshouse-dev/glasshouse/internal/testenv"
	"github.com/glasshouse-dev/glasshouse/storage"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/trace/noop"
)

// Unreachable decides whether a service waits for its database (unready,
// retrying) or stops at start with the error. Each error here is wrapped
// the way pgx and Open wrap it, so the test proves the classification
// sees through the wrapping.
func TestUnreachableTellsADatabaseNotReachedYetFromOneThatRefuses(t *testing.T) {
	pg := func(code, message string) error {
		return fmt.Errorf("migrate postgres://app:xxxxx@db/app: %w", &pgconn.PgError{Severity: "FATAL", Code: code, Message: message})
	}
	dial := func(err error) error {
		return fmt.Errorf("failed to connect: %w", &net.OpError{Op: "dial", Net: "tcp", Err: err})
	}
	for _, c := range []struct {
		name        string
		err         error
		unreachable bool
	}{
		// Waiting may cure these: retry, unready.
		{"connection refused", dial(&os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}), true},
		{"no route to host", dial(&os.SyscallError{Syscall: "connect", Err: syscall.EHOSTUNREACH}), true},
		{"no such host", fmt.Errorf("hostname resolving error: %w", &net.DNSError{Err: "no such host", Name: "db.invalid", IsNotFound: true}), true},
		{"DNS server timeout", fmt.Errorf("hostname resolving error: %w", &net.DNSError{Err: "i/o timeout", Name: "db", IsTimeout: true}), true},
		{"i/o timeout", fmt.Errorf("failed to receive message: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}), true},
		{"context deadline while connecting", fmt.Errorf("failed to connect: %w", context.DeadlineExceeded), true},
		{"closed before the server answered", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"closed at the TLS handshake", fmt.Errorf("tls error: %w", io.EOF), true},
		{"57P03 starting up", pg("57P03", "the database system is starting up"), true},
		{"57P03 in recovery", pg("57P03", "the database system is not yet accepting connections"), true},
		{"57P01 admin shutdown", pg("57P01", "terminating connection due to administrator command"), true},
		{"57P02 crash shutdown", pg("57P02", "terminating connection because of crash of another server process"), true},
		{"53300 too many connections", pg("53300", "sorry, too many clients already"), true},
		{"08000 connection exception", pg("08000", "connection exception"), true},
		{"08001 unable to establish", pg("08001", "could not establish connection"), true},
		{"08004 rejected establishment", pg("08004", "server rejected the connection"), true},
		{"08006 connection failure", pg("08006", "connection failure"), true},
		{"08P01 from a pooler that cannot reach the server", pg("08P01", "pgbouncer cannot connect to server"), true},

		// The server answered and refused, or the request is wrong:
		// waiting cures nothing, and the error must be seen at start.
		{"28P01 wrong password", pg("28P01", `password authentication failed for user "app"`), false},
		{"28000 no pg_hba entry", pg("28000", `no pg_hba.conf entry for host "10.0.0.7", user "app", database "app"`), false},
		{"3D000 no such database", pg("3D000", `database "app" does not exist`), false},
		{"42501 no CONNECT privilege", pg("42501", `permission denied for database "app"`), false},
		{"42601 syntax error in a migration", pg("42601", `syntax error at or near "CREAT"`), false},
		{"23505 unique violation", pg("23505", `duplicate key value violates unique constraint "notes_pkey"`), false},
		{"a stop (context canceled)", fmt.Errorf("failed to connect: %w", context.Canceled), false},
		{"any other error", errors.New("migrate: no such table: notes"), false},
		{"nil", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := storage.Unreachable(c.err); got != c.unreachable {
				t.Errorf("Unreachable(%v) = %v, want %v", c.err, got, c.unreachable)
			}
		})
	}
}

// The errors pgx really returns, through Open, for a database that is
// not there yet and for one that answers and refuses.
func TestUnreachableOnTheErrorsOpenReturns(t *testing.T) {
	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return ln.Addr().String()
	}
	// Something that accepts, reads the startup message and hangs up
	// without a word, as a proxy in front of a server that is not up yet
	// does. (Reading it first makes the client see EOF; hanging up on
	// unread bytes would make it a connection reset instead.)
	hangUp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hangUp.Close() })
	go func() {
		for {
			conn, err := hangUp.Accept()
			if err != nil {
				return
			}
			var length [4]byte // the startup message's length, itself included
			if _, err := io.ReadFull(conn, length[:]); err == nil {
				_, _ = io.CopyN(io.Discard, conn, int64(binary.BigEndian.Uint32(length[:]))-4)
			}
			conn.Close()
		}
	}()
	wrongPassword, err := url.Parse(testenv.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	wrongPassword.User = url.UserPassword(wrongPassword.User.Username(), "not-the-password")
	noSuchDatabase, err := url.Parse(testenv.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	noSuchDatabase.Path = "/no_such_database"

	for _, c := range []struct {
		name        string
		url         string
		unreachable bool
	}{
		{"nothing listening", "postgres://app:pw@" + closedPort() + "/app?sslmode=disable", true},
		{"hung up before answering", "postgres://app:pw@" + hangUp.Addr().String() + "/app?sslmode=disable", true},
		{"wrong password", wrongPassword.String(), false},
		{"no such database", noSuchDatabase.String(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := storage.Open(context.Background(), c.url, noop.NewTracerProvider(), testMigrations, func(db *storage.DB) *storage.DB { return db })
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if got := storage.Unreachable(err); got != c.unreachable {
				t.Errorf("Unreachable(%v) = %v, want %v", err, got, c.unreachable)
			}
		})
	}
}

// A host that accepts the connection and never answers the startup
// message (packets dropped after the handshake, a wedged proxy) must not
// hold Open for ever: the connect timeout ends the attempt, with an error
// that says so and counts as unreachable, so the service retries.
func TestOpenGivesUpOnAServerThatNeverAnswers(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn // open, never read or written, until the listener closes
		defer func() {
			for _, conn := range held {
				conn.Close()
			}
		}()
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()

	done := make(chan error, 1)
	go func() {
		// No deadline of the caller's, as at a service's start: only the
		// connect timeout can end the attempt.
		db, err := storage.Open(context.Background(), "postgres://app:pw@"+silent.Addr().String()+"/app?sslmode=disable",
			noop.NewTracerProvider(), testMigrations, func(db *storage.DB) *storage.DB { return db })
		if err == nil {
			db.Close()
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second): // far past the bound; only a hang gets here
		t.Fatalf("Open against a server that never answers still waiting after 60s; want it to give up after %s", storage.DefaultConnectTimeout)
	}
	if err == nil {
		t.Fatal("Open succeeded against a server that never answers")
	}
	if !storage.Unreachable(err) {
		t.Errorf("Unreachable(%v) = false; want true, so the service waits and retries", err)
	}
	if want := "no answer within connect_timeout (" + storage.DefaultConnectTimeout.String() + ")"; !strings.Contains(err.Error(), want) {
		t.Errorf("Open = %v; want it to say %q", err, want)
	}
}
