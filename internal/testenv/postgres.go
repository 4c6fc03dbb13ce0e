package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the admin connection
)

// The PostgreSQL cluster for tests: one per test binary, started by the
// first PostgresDatabase call, from the machine's own server binaries, and
// stopped by Main when the binary's tests are done. Starting a cluster
// takes a second or two, a database in it a few milliseconds, so each
// test gets a database of its own in the one cluster.
//
// It is package state, unlike everything else here, because it outlives
// every test: only TestMain sees the end of the binary.
var shared struct {
	sync.Mutex
	mainRuns bool // Main is running the tests, and will stop the cluster
	cluster  *pgCluster
	err      error // why the cluster could not start; every later call fails with it
	dbs      atomic.Int64
}

// Main runs the package's tests and then stops what they shared, the
// PostgreSQL cluster if one was started, before exiting. A package whose
// tests use PostgreSQL needs, in a _test.go file:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	shared.Lock()
	shared.mainRuns = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.cluster != nil {
		shared.cluster.stop()
		shared.cluster = nil
	}
	shared.Unlock()
	os.Exit(code)
}

// PostgresDatabase returns the URL of a new, empty database, for this
// test alone, in the test binary's PostgreSQL cluster (started on first
// use). The database is dropped when the test ends.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.mainRuns {
		t.Fatal("testenv.PostgresDatabase needs the package's TestMain to call testenv.Main(m), which stops the cluster at the end")
	}
	if shared.cluster == nil && shared.err == nil {
		shared.cluster, shared.err = startCluster()
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	c := shared.cluster
	name := fmt.Sprintf("test_%d_%s", shared.dbs.Add(1), sanitize(t.Name()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A database name is an identifier, not a parameter; sanitize keeps
	// it to [a-z0-9_].
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("create database %s: %v\n%s", name, err, c.tail())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends connections a test left open (a store it never closed).
		if _, err := c.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return c.url(name)
}

// sanitize turns a test name into a short lower-case identifier part.
func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() == 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// PostgresBinDir finds the directory of the PostgreSQL server binaries
// (initdb, postgres): `pg_config --bindir`, else the newest
// /usr/lib/postgresql/*/bin, else wherever initdb is on PATH.
func PostgresBinDir() (string, error) {
	has := func(dir string) bool {
		_, err1 := os.Stat(filepath.Join(dir, "initdb"))
		_, err2 := os.Stat(filepath.Join(dir, "postgres"))
		return err1 == nil && err2 == nil
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // Glob sorts, so the newest is last (for one-digit versions and up)
		if has(dirs[i]) {
			return dirs[i], nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) in `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH: " +
		"install them (Debian: apt-get install postgresql; the system service need not run)")
}

// pgCluster is a running throwaway cluster.
type pgCluster struct {
	dir      string
	port     int
	password string
	admin    *sql.DB
	cmd      *exec.Cmd
	exited   chan struct{}
	logPath  string
}

const pgSuperuser = "glasshouse"

func (c *pgCluster) url(db string) string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(pgSuperuser, c.password),
		Host: "127.0.0.1:" + strconv.Itoa(c.port), Path: "/" + db, RawQuery: "sslmode=disable",
	}
	return u.String()
}

func (c *pgCluster) tail() string {
	b, _ := os.ReadFile(c.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "--- last lines of the PostgreSQL log (" + c.logPath + "):\n" + strings.Join(lines, "\n")
}

// startCluster runs initdb in a new temporary directory and starts
// postgres on it: loopback and a socket in that directory only, a free
// port, a random password, and durability off (fsync and friends), which
// a cluster that dies with the tests does not need.
//
// PostgreSQL refuses to run as root. When the tests run as root (as in
// CI here), initdb and postgres run as the "postgres" system user that
// Debian's package creates, and the directory is theirs.
func startCluster() (_ *pgCluster, err error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "glasshouse-pg-")
	if err != nil {
		return nil, err
	}
	c := &pgCluster{dir: dir, logPath: filepath.Join(dir, "postgres.log")}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	cred, err := pgCredential(dir)
	if err != nil {
		return nil, err
	}
	c.password = randomHex(16)
	pwfile := filepath.Join(dir, "pwfile")
	if err := writeOwned(pwfile, c.password+"\n", cred); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", pgSuperuser, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}

	ports, err := freePorts(1)
	if err != nil {
		return nil, fmt.Errorf("a free port for PostgreSQL: %w", err)
	}
	c.port = ports[0]
	logFile, err := os.Create(c.logPath)
	if err != nil {
		return nil, err
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-k", dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// Its own process group, so stop can kill the postmaster and every
	// backend at once; and killed by the kernel if the test binary dies
	// without running Main's cleanup (a panic, a -timeout).
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	c.exited = make(chan struct{})
	started := make(chan error, 1)
	// Pdeathsig fires when the thread that started the child ends, not
	// the process, so the child is started and waited for on one locked
	// thread that lives exactly as long as it does.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(c.exited)
		defer logFile.Close()
		if err := c.cmd.Start(); err != nil {
			started <- fmt.Errorf("start postgres: %w", err)
			return
		}
		started <- nil
		_ = c.cmd.Wait()
	}()
	if err := <-started; err != nil {
		c.cmd = nil
		return nil, err
	}

	c.admin, err = sql.Open("pgx", c.url("postgres"))
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = c.admin.PingContext(ctx)
		cancel()
		if err == nil {
			return c, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("postgres exited at start\n%s", c.tail())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("postgres not answering within 30s: %v\n%s", err, c.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop shuts the cluster down (a fast shutdown, then SIGKILL to the whole
// process group if it lingers) and removes its directory.
func (c *pgCluster) stop() {
	if c.admin != nil {
		c.admin.Close()
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown: end sessions, checkpoint, exit
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
		}
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL) // any backend left behind
		<-c.exited
	}
	os.RemoveAll(c.dir)
}

// pgCredential is who initdb and postgres run as: nil (this process's
// user) unless that is root, then the postgres system user, who is given
// dir.
func pgCredential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("tests run as root, and PostgreSQL refuses to; no postgres user to run it as (Debian's postgresql package creates one): %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// writeOwned writes a private file that cred (if any) owns.
func writeOwned(path, content string, cred *syscall.Credential) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	if cred == nil {
		return nil
	}
	return os.Chown(path, int(cred.Uid), int(cred.Gid))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
