package cancel

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// instance is a registry behind a loopback listener that reads each
// connection's CancelRequest and hands it to the registry, as pgvalve's
// front door does.
type instance struct {
	reg      *Registry
	ln       net.Listener
	wg       sync.WaitGroup
	requests atomic.Int32 // connections that brought a request
	last     atomic.Int32 // the Outcome of the last one
}

func startInstance(t *testing.T, self int) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{reg: NewRegistry(self), ln: ln}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			in.wg.Add(1)
			go func() {
				defer in.wg.Done()
				defer c.Close()
				var pkt [16]byte
				if _, err := io.ReadFull(c, pkt[:]); err != nil {
					return
				}
				in.requests.Add(1)
				out, _ := in.reg.Cancel(context.Background(), binary.BigEndian.Uint32(pkt[8:]), pkt[12:])
				in.last.Store(int32(out))
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); in.wg.Wait() })
	return in
}

func (in *instance) peer() Peer { return Peer{Network: "tcp", Address: in.ln.Addr().String()} }

// cancelAt sends a client's CancelRequest to in and waits until in has
// handled it (closed the connection), as a client does.
func cancelAt(t *testing.T, in *instance, k Key) {
	t.Helper()
	if err := send(context.Background(), in.peer(), k.PID, k.Secret); err != nil {
		t.Fatal(err)
	}
}

// fleet starts instances 1..n, each knowing all of them (itself too, as
// a shared [peers] list has it).
func fleet(t *testing.T, n int) []*instance {
	t.Helper()
	ins := make([]*instance, n)
	peers := map[int]Peer{}
	for i := range ins {
		ins[i] = startInstance(t, i+1)
		peers[i+1] = ins[i].peer()
	}
	for _, in := range ins {
		in.reg.SetPeers(peers)
	}
	return ins
}

func TestAFleetKeyNamesItsInstanceAndIsPositiveAndNeverZero(t *testing.T) {
	for _, self := range []int{1, 2, 777, MaxPeerID} {
		r := NewRegistry(self)
		for range 200 {
			k, unregister := r.Register(&countTarget{})
			if owner, forwarded := peerOf(k.PID); owner != uint32(self) || forwarded {
				t.Fatalf("instance %d issued pid %#x, which names %d (forwarded: %v)", self, k.PID, owner, forwarded)
			}
			if int32(k.PID) <= 0 {
				t.Fatalf("instance %d issued pid %d; want a positive one", self, int32(k.PID))
			}
			unregister()
		}
	}
}

func TestACancelAtAnotherInstanceIsForwardedToTheOneThatIssuedItsKey(t *testing.T) {
	ins := fleet(t, 3)
	target, bystander := &countTarget{}, &countTarget{}
	k, unregister := ins[1].reg.Register(target) // instance 2's client
	defer unregister()
	_, unregisterB := ins[2].reg.Register(bystander)
	defer unregisterB()

	cancelAt(t, ins[0], k)
	if got := Outcome(ins[0].last.Load()); got != Forwarded {
		t.Fatalf("instance 1 says %s; want forwarded", got)
	}
	if target.n.Load() != 1 || bystander.n.Load() != 0 {
		t.Fatalf("the key's client cancelled %d times, instance 3's client %d; want 1 and 0", target.n.Load(), bystander.n.Load())
	}
	if ins[2].requests.Load() != 0 {
		t.Fatal("instance 3 got a request for instance 2's key")
	}

	cancelAt(t, ins[1], k) // at its own instance: delivered there, nothing forwarded
	if got := Outcome(ins[1].last.Load()); got != Delivered || target.n.Load() != 2 || ins[1].requests.Load() != 2 {
		t.Fatalf("at the key's own instance: %s, cancelled %d times, %d requests there", got, target.n.Load(), ins[1].requests.Load())
	}
}

func TestAKeyNamingNoKnownPeerOrAWrongSecretCancelsNothing(t *testing.T) {
	ins := fleet(t, 2)
	target := &countTarget{}
	k, unregister := ins[1].reg.Register(target)
	defer unregister()

	ins[0].reg.SetPeers(nil) // instance 1 no longer knows the fleet
	cancelAt(t, ins[0], k)
	if got := Outcome(ins[0].last.Load()); got != Unknown || ins[1].requests.Load() != 0 {
		t.Fatalf("without peers: %s, %d requests at instance 2; want unknown and none", got, ins[1].requests.Load())
	}

	ins[0].reg.SetPeers(map[int]Peer{2: ins[1].peer()})
	stranger := Key{PID: fleetPID(0x5555_0000, 9), Secret: k.Secret} // names instance 9
	cancelAt(t, ins[0], stranger)
	wrong := Key{PID: k.PID, Secret: []byte{1, 2, 3, 4}}
	cancelAt(t, ins[0], wrong) // forwarded, and unknown where it lands
	if target.n.Load() != 0 || Outcome(ins[1].last.Load()) != Unknown {
		t.Fatalf("the client was cancelled %d times by keys that are not its own", target.n.Load())
	}
}

// Instances that disagree on who is who never pass a request around: a
// forwarded request that does not name its receiver stops there.
func TestAForwardedRequestIsNeverForwardedAgain(t *testing.T) {
	a, b, c := startInstance(t, 1), startInstance(t, 2), startInstance(t, 3)
	a.reg.SetPeers(map[int]Peer{3: b.peer()}) // wrong: 3 is c
	b.reg.SetPeers(map[int]Peer{3: c.peer()})
	target := &countTarget{}
	k, unregister := c.reg.Register(target)
	defer unregister()

	cancelAt(t, a, k)
	if got := Outcome(b.last.Load()); got != Unknown || c.requests.Load() != 0 || target.n.Load() != 0 {
		t.Fatalf("instance 2 said %s and instance 3 got %d requests; want the request to stop at 2", got, c.requests.Load())
	}
}

func TestForwardingToAPeerThatIsDownSaysWhy(t *testing.T) {
	in := startInstance(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	_ = ln.Close()
	in.reg.SetPeers(map[int]Peer{2: {Network: "tcp", Address: gone}})
	out, err := in.reg.Cancel(context.Background(), fleetPID(0x1234_0000, 2), []byte{1, 2, 3, 4})
	if out != Forwarded || err == nil {
		t.Fatalf("Cancel = %s, %v; want forwarded with the dial's error", out, err)
	}
}
