package listener

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// SocketPath is the unix socket of port in dir, named as PostgreSQL's, so
// that psql -h dir -p port finds it.
func SocketPath(dir string, port int) string {
	return filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))
}

// Unix listens on the unix socket of port in dir and gives the file mode.
// A socket file left by a process that died is removed first; one that
// something still answers on is not, and Unix fails. Closing the listener
// removes the file.
func Unix(dir string, port int, mode os.FileMode) (*net.UnixListener, error) {
	path := SocketPath(dir, port)
	if err := RemoveStale(path); err != nil {
		if errors.Is(err, ErrInUse) {
			err = fmt.Errorf("%w (another pgvalve or PgBouncer on the same port?)", err)
		}
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on unix socket: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("unix socket mode: %w", err)
	}
	return ln, nil
}

// ErrInUse is RemoveStale's error for a socket something answers on.
var ErrInUse = errors.New("another process is listening on it")

// RemoveStale removes path if it is a socket nothing listens on, left by a
// process that died. A probe connection tells (PgBouncer checks a lock
// file; this needs none). A socket something answers on is ErrInUse.
func RemoveStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket; not removing it", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s: %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}
