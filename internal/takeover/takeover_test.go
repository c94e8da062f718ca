package takeover

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a connected old and new end over a real takeover socket.
func pair(t *testing.T) (oldEnd, newEnd *Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "takeover")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	newEnd, err = Dial(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	oldEnd = <-accepted
	if oldEnd == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { oldEnd.Close(); newEnd.Close() })
	return oldEnd, newEnd
}

func TestADescriptorSentIsTheSameFileOnTheOtherSide(t *testing.T) {
	oldEnd, newEnd := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := oldEnd.Send(KindListeners, Listeners{Version: Version, Names: []string{"tcp"}}, int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	w.Close() // the receiver's copy keeps the pipe open
	var got Listeners
	kind, files, err := newEnd.Recv(&got)
	if err != nil {
		t.Fatal(err)
	}
	if kind != KindListeners || len(files) != 1 || got.Names[0] != "tcp" {
		t.Fatalf("got kind %d, %d files, %+v", kind, len(files), got)
	}
	if _, err := files[0].WriteString("through"); err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "through" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestMessagesKeepTheirOrderAndBodies(t *testing.T) {
	oldEnd, newEnd := pair(t)
	go func() {
		_ = newEnd.Send(KindHello, Hello{Version: Version, PID: 7})
		_ = newEnd.Send(KindServing, nil)
	}()
	var h Hello
	if k, _, err := oldEnd.Recv(&h); err != nil || k != KindHello || h.PID != 7 {
		t.Fatalf("first: %d %+v %v", k, h, err)
	}
	if k, files, err := oldEnd.Recv(nil); err != nil || k != KindServing || len(files) != 0 {
		t.Fatalf("second: %d %d %v", k, len(files), err)
	}
}

// raw writes bytes straight to the socket under c, as a broken or hostile
// peer would.
func raw(t *testing.T, c *Conn, b []byte) {
	t.Helper()
	if _, err := c.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func TestAHeaderThatLiesIsRefusedBeforeItsBodyIsRead(t *testing.T) {
	for name, hdr := range map[string][]byte{
		"unknown kind":         {99, 0, 0, 0, 0, 2},
		"descriptors missing":  {byte(KindClient), 1, 0, 0, 0, 2},
		"body over the limit":  {byte(KindClient), 0, 0xff, 0xff, 0xff, 0xff},
		"closed mid header":    {byte(KindHello), 0},
		"body not json for it": append([]byte{byte(KindHello), 0, 0, 0, 0, 3}, "abc"...),
	} {
		t.Run(name, func(t *testing.T) {
			oldEnd, newEnd := pair(t)
			raw(t, newEnd, hdr)
			newEnd.Close()
			var h Hello
			_, files, err := oldEnd.Recv(&h)
			if err == nil || files != nil {
				t.Fatalf("accepted %x: files %v", hdr, files)
			}
		})
	}
}

// Only the listeners and a client come with descriptors: any other
// message that brings one is refused (and the descriptor closed), and so
// is a message of another kind than the one expected.
func TestDescriptorsComeOnlyWithTheMessagesThatCarryThem(t *testing.T) {
	oldEnd, newEnd := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := newEnd.Send(KindHello, Hello{}, int(w.Fd())); err == nil {
		t.Fatal("sent a hello with a descriptor")
	}
	hdr := []byte{byte(KindHello), 1, 0, 0, 0, 2}
	if _, _, err := newEnd.c.WriteMsgUnix(hdr, syscall.UnixRights(int(w.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	raw(t, newEnd, []byte("{}"))
	if _, files, err := oldEnd.Recv(nil); err == nil || files != nil {
		t.Fatalf("a hello with a descriptor was taken: %v, %v", files, err)
	}
	oldEnd2, newEnd2 := pair(t)
	if err := newEnd2.Send(KindServing, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := oldEnd2.Expect(KindHello, nil); err == nil {
		t.Fatal("Expect took a message of another kind")
	}
}

func TestListenRefusesASocketAnotherProcessAnswersOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "takeover")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "--takeover") {
		t.Fatalf("second Listen: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
}

func TestListenRemovesAStaleSocketFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "takeover")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the file stays, as a killed process leaves it
	l2, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
}

func TestDialFailsWithoutAnOldProcess(t *testing.T) {
	if _, err := Dial(filepath.Join(t.TempDir(), "none"), time.Second); err == nil {
		t.Fatal("dialled nothing")
	}
}

func FuzzRecv(f *testing.F) {
	f.Add([]byte{byte(KindHello), 0, 0, 0, 0, 2, '{', '}'})
	f.Add([]byte{byte(KindDone), 0, 0, 0, 0, 4, 'n', 'u', 'l', 'l'})
	f.Add(binary.BigEndian.AppendUint32([]byte{byte(KindClient), 0}, 1<<31))
	f.Fuzz(func(t *testing.T, b []byte) {
		fds, err := socketpair()
		if err != nil {
			t.Skip(err)
		}
		defer fds[0].Close()
		defer fds[1].Close()
		go func() { _, _ = fds[0].c.Write(b); fds[0].c.CloseWrite() }()
		var v map[string]any
		_, files, _ := fds[1].Recv(&v)
		CloseAll(files)
	})
}

// socketpair is two connected Conns with no socket file.
func socketpair() ([2]*Conn, error) {
	var out [2]*Conn
	dir, err := os.MkdirTemp("", "takeover-fuzz")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		return out, err
	}
	defer ln.Close()
	c, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		return out, err
	}
	s, err := ln.AcceptUnix()
	if err != nil {
		c.Close()
		return out, err
	}
	return [2]*Conn{{c: c}, {c: s}}, nil
}
