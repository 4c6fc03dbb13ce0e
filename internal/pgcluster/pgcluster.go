// Package pgcluster runs a PostgreSQL cluster from the machine's own
// server binaries, as a child process: the tests' throwaway cluster
// (internal/testenv) and the local stack's (stack, `glasshouse up --store
// postgres`) are both one of these. It finds the binaries, runs initdb
// once per data directory (as the postgres system user when this process
// is root, since PostgreSQL refuses to run as root), and starts and stops
// the server on one host and port, loopback in practice.
//
// The server is in its own process group (so a stop reaches every
// backend) and is killed by the kernel if the process that started it
// dies, so a crashed test binary or `glasshouse up` leaves no postgres
// behind.
package pgcluster

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the admin connection
)

// Superuser is the cluster's superuser role, which initdb creates.
const Superuser = "glasshouse"

// ErrNoBinaries says the server binaries are not on this machine, and
// what to install.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries (initdb, postgres) in `pg_config --bindir`, /usr/lib/postgresql/*/bin or PATH: " +
	"install them (Debian: apt-get install postgresql, or `make postgres`; the system service need not run)")

// BinDir finds the directory of the PostgreSQL server binaries (initdb,
// postgres): `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin,
// else wherever initdb is on PATH.
func BinDir() (string, error) {
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
	return "", ErrNoBinaries
}

// Config describes a cluster.
type Config struct {
	// Dir holds the cluster: data/ (the data directory), postgres.log,
	// the superuser's password and the server's socket. It is created if
	// missing; when this process is root it is given to the postgres user,
	// who must be able to reach it (every directory above it searchable).
	Dir string
	// Host and Port are where the server listens (TCP only there, and a
	// socket in Dir); Host defaults to 127.0.0.1.
	Host string
	Port int
	// Throwaway turns durability off (fsync and friends): for a cluster
	// whose data dies with the tests.
	Throwaway bool
	// MaxConnections defaults to 200: every replica of every service has
	// its own pool.
	MaxConnections int
}

// Cluster is a cluster's data directory and, once started, its server.
type Cluster struct {
	cfg      Config
	bin      string
	cred     *syscall.Credential
	password string

	admin  *sql.DB
	cmd    *exec.Cmd
	exited chan struct{}
}

// Open finds the binaries and makes sure cfg.Dir holds a cluster: initdb
// runs the first time only, so data survives from one Open to the next.
// It does not start the server.
func Open(cfg Config) (*Cluster, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 200
	}
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, bin: bin}
	if c.cred, err = credential(dir); err != nil {
		return nil, err
	}
	pwfile := filepath.Join(dir, "superuser-password")
	if _, err := os.Stat(filepath.Join(c.DataDir(), "PG_VERSION")); err == nil {
		b, err := os.ReadFile(pwfile)
		if err != nil {
			return nil, fmt.Errorf("a cluster in %s without its superuser password: %w", c.DataDir(), err)
		}
		c.password = strings.TrimSpace(string(b))
		return c, nil
	}
	c.password = RandomPassword()
	if err := writeOwned(pwfile, c.password+"\n", c.cred); err != nil {
		return nil, err
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", c.DataDir(), "-U", Superuser, "--pwfile", pwfile,
		"--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(c.DataDir()) // so the next Open runs initdb again
		hint := ""
		if c.cred != nil {
			hint = fmt.Sprintf(" (as root, initdb and postgres run as the postgres user, who must be able to reach %s)", dir)
		}
		return nil, fmt.Errorf("initdb%s: %v\n%s", hint, err, out)
	}
	return c, nil
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.cfg.Dir, "data") }

// LogPath is the server's log.
func (c *Cluster) LogPath() string { return filepath.Join(c.cfg.Dir, "postgres.log") }

// Addr is the host:port the server listens on.
func (c *Cluster) Addr() string { return net.JoinHostPort(c.cfg.Host, strconv.Itoa(c.cfg.Port)) }

// URL is the URL of database db for role with password.
func (c *Cluster) URL(role, password, db string) string {
	u := url.URL{
		Scheme: "postgres", User: url.UserPassword(role, password),
		Host: c.Addr(), Path: "/" + db, RawQuery: "sslmode=disable",
	}
	return u.String()
}

// SuperuserURL is the URL of database db as the superuser.
func (c *Cluster) SuperuserURL(db string) string { return c.URL(Superuser, c.password, db) }

// Admin is a connection pool to the postgres database as the superuser,
// while the server runs.
func (c *Cluster) Admin() *sql.DB { return c.admin }

// PID is the postmaster's process ID (also its process group), 0 when
// never started.
func (c *Cluster) PID() int {
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// Exited is closed when the server last started exits.
func (c *Cluster) Exited() <-chan struct{} { return c.exited }

// Running reports whether the server has been started and not exited.
func (c *Cluster) Running() bool {
	if c.exited == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Tail returns the last n lines of the server's log, headed by its path.
func (c *Cluster) Tail(n int) string {
	b, _ := os.ReadFile(c.LogPath())
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- last lines of the PostgreSQL log (" + c.LogPath() + "):\n" + strings.Join(lines, "\n")
}

// Start starts the server and returns once it answers as the superuser;
// it may be called again after the server stopped or was killed.
func (c *Cluster) Start(ctx context.Context) error {
	if c.Running() {
		return errors.New("postgres is already running")
	}
	logFile, err := os.OpenFile(c.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	args := []string{"-D", c.DataDir(), "-h", c.cfg.Host, "-p", strconv.Itoa(c.cfg.Port), "-k", c.cfg.Dir,
		"-c", "max_connections=" + strconv.Itoa(c.cfg.MaxConnections), "-c", "shared_buffers=32MB"}
	if c.cfg.Throwaway {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Dir = c.cfg.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a stop can kill the postmaster and every
	// backend at once; and killed by the kernel if this process dies
	// without stopping it (a panic, a test -timeout, a crashed
	// `glasshouse up`).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: c.cred}
	exited := make(chan struct{})
	started := make(chan error, 1)
	// Pdeathsig fires when the thread that started the child ends, not
	// the process, so the child is started and waited for on one locked
	// thread that lives exactly as long as it does.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer close(exited)
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start postgres: %w", err)
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return err
	}
	c.cmd, c.exited = cmd, exited

	if c.admin == nil {
		if c.admin, err = sql.Open("pgx", c.SuperuserURL("postgres")); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = c.admin.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited at start\n%s", c.Tail(30))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not answering on %s within 30s: %v\n%s", c.Addr(), err, c.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop shuts the server down: a fast shutdown (sessions ended, a
// checkpoint, exit), then SIGKILL to its whole process group if it is not
// done within grace. The data directory stays.
func (c *Cluster) Stop(grace time.Duration) error {
	if c.admin != nil {
		c.admin.Close()
		c.admin = nil
	}
	if !c.Running() {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	var err error
	select {
	case <-c.exited:
	case <-time.After(grace):
		err = fmt.Errorf("postgres did not stop within %s; killed", grace)
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL) // any backend left behind
	<-c.exited
	return err
}

// credential is who initdb and postgres run as: nil (this process's user)
// unless that is root, then the postgres system user, who is given dir.
func credential(dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, which PostgreSQL refuses, and no postgres user to run it as (Debian's postgresql package creates one): %w", err)
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

// RandomPassword is a fresh random password, safe in a URL.
func RandomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// Quote quotes an identifier (a role or database name) for SQL, which
// takes no parameters there.
func Quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

// OwnDatabase makes role a login role with password (reset if the role
// exists) and database name its own: created if missing, owned by role,
// and closed to everyone else (PUBLIC loses CONNECT and TEMPORARY), so
// one service's role cannot read another service's database.
func (c *Cluster) OwnDatabase(ctx context.Context, role, password, name string) error {
	if c.admin == nil {
		return errors.New("postgres is not running")
	}
	var roleExists, dbExists bool
	if err := c.admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&roleExists); err != nil {
		return err
	}
	// A password is a literal in CREATE/ALTER ROLE, not a parameter;
	// RandomPassword's are hex, and quote_literal-style doubling covers
	// any other.
	pw := `'` + strings.ReplaceAll(password, `'`, `''`) + `'`
	stmt := `CREATE ROLE ` + Quote(role) + ` LOGIN PASSWORD ` + pw
	if roleExists {
		stmt = `ALTER ROLE ` + Quote(role) + ` LOGIN PASSWORD ` + pw
	}
	if _, err := c.admin.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("role %s: %w", role, err)
	}
	if err := c.admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&dbExists); err != nil {
		return err
	}
	if !dbExists {
		if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE `+Quote(name)+` OWNER `+Quote(role)); err != nil {
			return fmt.Errorf("database %s: %w", name, err)
		}
	}
	if _, err := c.admin.ExecContext(ctx, `REVOKE ALL ON DATABASE `+Quote(name)+` FROM PUBLIC`); err != nil {
		return fmt.Errorf("database %s: %w", name, err)
	}
	return nil
}
