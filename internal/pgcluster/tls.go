package pgcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// writeTLS puts t's files in the data directory, owned by the server's OS
// user with mode 0600 (PostgreSQL refuses a key others can read), and
// turns ssl on; nil leaves ssl off.
func (c *Cluster) writeTLS(t *TLS) error {
	if t == nil {
		return nil
	}
	if c.settings == nil {
		c.settings = map[string]string{}
	}
	files := []struct {
		name, setting string
		pem           []byte
	}{{"server.crt", "ssl_cert_file", t.Cert}, {"server.key", "ssl_key_file", t.Key}, {"root.crt", "ssl_ca_file", t.CA}}
	for _, f := range files {
		if len(f.pem) == 0 {
			continue
		}
		path := filepath.Join(c.DataDir, f.name)
		if err := os.WriteFile(path, f.pem, 0o600); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if err := c.chown(path); err != nil {
			return err
		}
		c.settings[f.setting] = path
	}
	c.settings["ssl"] = "on"
	return nil
}

// prependHBA puts lines before pg_hba.conf's own rules.
func (c *Cluster) prependHBA(lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	path := filepath.Join(c.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	data := "# from pgcluster.Options.HBA\n" + strings.Join(lines, "\n") + "\n\n" + string(old)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return c.chown(path)
}
