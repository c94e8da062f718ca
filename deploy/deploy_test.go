// Package deploy holds the files pgvalve ships to run it: the systemd
// unit, the Containerfile and the Helm chart. Its tests check them with
// the tools that read them (or, for the chart, Helm's template functions).
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// verifyUnit runs systemd-analyze verify on unit text, with ExecStart's
// binary replaced by one that exists here, and returns what it said.
func verifyUnit(t *testing.T, unit string) string {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is missing; scripts/ensure-deps.sh installs systemd")
		}
		t.Skip("no systemd-analyze here")
	}
	path := filepath.Join(t.TempDir(), "pgvalve.service")
	unit = strings.ReplaceAll(unit, "/usr/local/bin/pgvalve", "/bin/true")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil {
		return string(out) + err.Error()
	}
	return strings.TrimSpace(string(out))
}

func TestTheSystemdUnitVerifiesCleanly(t *testing.T) {
	unit, err := os.ReadFile("systemd/pgvalve.service")
	if err != nil {
		t.Fatal(err)
	}
	if out := verifyUnit(t, string(unit)); out != "" {
		t.Fatalf("systemd-analyze verify: %s", out)
	}
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
}

// The check above would see a unit systemd does not understand.
func TestTheUnitCheckCatchesAMisspelledKey(t *testing.T) {
	unit, err := os.ReadFile("systemd/pgvalve.service")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(unit), "ProtectSystem=", "ProtectSytem=", 1)
	if out := verifyUnit(t, bad); !strings.Contains(out, "Unknown key") {
		t.Fatalf("a misspelled key passed: %q", out)
	}
}

// The Containerfile's build command resolves with CGO_ENABLED=0: every
// package pgvalve needs builds without cgo, so the binary needs no libc
// and runs in an image from scratch. It is run dry (go build -n): a real
// build compiles everything again, minutes that would slow the timing
// tests beside it. (Building the image needs a registry the tests cannot
// count on.)
func TestTheContainerfileBuildsAStaticBinaryForAnEmptyImage(t *testing.T) {
	cf, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(cf)
	for _, want := range []string{"FROM scratch", "USER 65532:65532", `ENTRYPOINT ["/pgvalve", "run"]`, "ca-certificates.crt"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Containerfile lacks %q", want)
		}
	}
	m := regexp.MustCompile(`RUN (CGO_ENABLED=0 go build) ([^\n]*) -o /out/pgvalve (\./cmd/pgvalve)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no CGO_ENABLED=0 go build of ./cmd/pgvalve in the Containerfile")
	}
	// The Containerfile's own command, run by a shell as its RUN line is.
	cmd := exec.Command("sh", "-c", m[1]+" -n "+m[2]+" -o /dev/null "+m[3])
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "VERSION=test")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", m[1], err, out)
	}
	// The link step lists runtime/cgo when cgo is on.
	if strings.Contains(string(out), "packagefile runtime/cgo=") {
		t.Fatal("the build links runtime/cgo: the binary would need libc")
	}
}
