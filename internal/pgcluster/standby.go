package pgcluster

import (
	"maps"
	"strconv"
)

// StartStandby makes a streaming replica of c (pg_basebackup -R over c's
// unix socket, where the superuser is trusted; a fast checkpoint, else it
// waits for the next one) and starts it on a port of its own. It has c's roles and passwords; Stop removes it.
func (c *Cluster) StartStandby() (*Cluster, error) {
	s := &Cluster{
		Host: c.Host, BinDir: c.BinDir,
		Superuser: c.Superuser, User: c.User, Password: c.Password, Database: c.Database,
		superPassword: c.superPassword, settings: maps.Clone(c.settings), env: c.env, cred: c.cred,
	}
	if err := s.makeRoot("pgvalve-pgcluster-standby-"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = s.Stop()
		}
	}()
	if err := s.prepareDirs(); err != nil {
		return nil, err
	}
	if err := s.startWatchdog(); err != nil {
		return nil, err
	}
	if _, err := s.run("pg_basebackup", "-D", s.DataDir, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
		"-h", c.SocketDir, "-p", strconv.Itoa(c.Port), "-U", c.Superuser); err != nil {
		return nil, err
	}
	// The copy holds c's port and socket directory; startOnFreePort
	// writes its own.
	if err := s.startOnFreePort(); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// Promote ends a standby's recovery: it becomes a primary (pg_ctl promote,
// waiting until it is done).
func (c *Cluster) Promote() error {
	_, err := c.run("pg_ctl", "promote", "-D", c.DataDir, "-w", "-s")
	return err
}
