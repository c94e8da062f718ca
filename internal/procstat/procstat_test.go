package procstat

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func TestCPUGrowsWhileTheProcessWorks(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	u0, s0, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	u1, s1, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u1+s1 <= u0+s0 {
		t.Fatalf("CPU went from %v to %v over 200 ms of work", u0+s0, u1+s1)
	}
}

func TestRSSIsThatOfALiveProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	if n, err := RSS(os.Getpid()); err != nil || n < 1<<20 {
		t.Fatalf("RSS = %d, %v; want at least a MiB for a Go test binary", n, err)
	}
}

func TestAProcessThatIsGoneIsAnError(t *testing.T) {
	const none = 1 << 30 // above Linux's pid_max
	if _, _, err := CPU(none); err == nil {
		t.Error("CPU of no process: no error")
	}
	if _, err := RSS(none); err == nil {
		t.Error("RSS of no process: no error")
	}
}
