package app_test

import (
	"encoding/base64"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/metrics"
	"github.com/pgvalve/pgvalve/internal/testutil/valvetest"
)

// No password, hash or key reaches the log (at debug level), the admin
// console or the metrics: not the right password nor a wrong one a client
// tried, not auth_file's secrets, not the upstream URL's password.
func TestNoSecretAppearsInLogsTheConsoleOrMetrics(t *testing.T) {
	verifier := storedVerifier(t)
	sec, err := auth.ParseSecret(verifier)
	if err != nil {
		t.Fatal(err)
	}
	const wrong = "wrong-guess-5d41"
	md5User := md5Secret("md5user", "md5-password-77")
	logs := &logLines{}
	cfg := txnConfig(2)
	cfg.Auth = config.AuthSCRAM
	cfg.AuthFile = userlist(t, entry(cluster.User, verifier), entry("md5user", md5User), entry("admin", cluster.Password))
	cfg.AdminUsers = []string{"admin"}
	s := valvetest.StartLogged(t, cfg, logs)

	if err := login(t, s, cluster.User, cluster.Password); err != nil {
		t.Fatal(err)
	}
	if login(t, s, cluster.User, wrong) == nil || login(t, s, "md5user", wrong) == nil {
		t.Fatal("a wrong password logged in")
	}
	console, err := consoleLogin(t, s, "admin", cluster.Password)
	if err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	for _, cmd := range []string{"SHOW CONFIG", "SHOW USERS", "SHOW DATABASES", "SHOW CLIENTS", "SHOW SERVERS", "SHOW POOLS"} {
		for _, row := range show(t, console, cmd) {
			for _, v := range row {
				seen.WriteString(v + "\n")
			}
		}
	}
	srv := httptest.NewServer(metrics.NewHandler(s.App.Source()))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	b64 := base64.StdEncoding.EncodeToString
	secrets := map[string]string{
		"the password":               cluster.Password,
		"a wrong password":           wrong,
		"the verifier's StoredKey":   b64(sec.SCRAM.StoredKey),
		"the verifier's ServerKey":   b64(sec.SCRAM.ServerKey),
		"an md5 hash from auth_file": md5User[3:],
	}
	for where, text := range map[string]string{"log": logs.String(), "console": seen.String(), "metrics": string(body)} {
		if len(text) < 100 {
			t.Fatalf("the %s holds almost nothing (%d bytes): the check would prove nothing", where, len(text))
		}
		for what, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows %s", where, what)
			}
		}
	}
}
