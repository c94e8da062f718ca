package takeover

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// samePeer refuses a peer run by another user than this process's.
func samePeer(c *net.UnixConn) error {
	var cred *unix.Ucred
	err := RawFD(c, func(fd int) (err error) {
		cred, err = unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		return err
	})
	if err != nil {
		return fmt.Errorf("takeover: SO_PEERCRED: %w", err)
	}
	if int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("takeover: peer runs as uid %d, this process as %d", cred.Uid, os.Geteuid())
	}
	return nil
}
