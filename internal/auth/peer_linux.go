package auth

import (
	"errors"
	"fmt"
	"net"
	"os/user"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// PeerUser is the name of the operating system user at the other end of a
// unix socket, as the kernel reports it (SO_PEERCRED), for peer
// authentication.
func PeerUser(conn net.Conn) (string, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok || conn.LocalAddr().Network() != "unix" {
		return "", errors.New("peer authentication needs a unix socket")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return "", err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return "", err
	}
	if credErr != nil {
		return "", fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(cred.Uid), 10))
	if err != nil {
		return "", fmt.Errorf("uid %d: %w", cred.Uid, err)
	}
	return u.Username, nil
}
