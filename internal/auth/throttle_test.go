package auth

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

func TestRepeatedFailuresFromOneAddressWaitLongerEachTime(t *testing.T) {
	th := NewThrottle()
	var got []time.Duration
	for i := range 9 {
		got = append(got, th.Failed("10.0.0.7", t0.Add(time.Duration(i)*time.Second)))
	}
	want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	if d := th.Failed("10.0.0.8", t0); d != 0 {
		t.Errorf("another address's first failure waits %v", d)
	}
}

func TestASuccessOrAQuietMinuteForgetsTheFailures(t *testing.T) {
	th := NewThrottle()
	th.Failed("a", t0)
	th.Failed("a", t0)
	th.Succeeded("a")
	if d := th.Failed("a", t0); d != 0 {
		t.Errorf("after a success the next failure waits %v", d)
	}
	th.Failed("a", t0)
	if d := th.Failed("a", t0.Add(2*time.Minute)); d != 0 {
		t.Errorf("after a quiet window the next failure waits %v", d)
	}
}

func TestTheTableOfAddressesIsBounded(t *testing.T) {
	th := NewThrottle()
	th.MaxAddrs = 100
	for i := range 1000 {
		th.Failed(fmt.Sprint("10.0.", i/256, ".", i%256), t0)
	}
	if n := th.Len(); n > 100 {
		t.Errorf("%d addresses remembered, bound 100", n)
	}
}
