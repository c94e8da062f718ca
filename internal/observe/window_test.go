package observe

import (
	"sync"
	"testing"
	"time"
)

func TestWindowSumsTheLastMinuteOnly(t *testing.T) {
	var w Window
	w.AddAt(5, at)
	w.AddAt(7, at.Add(20*time.Second))
	if got := w.LastMinute(at.Add(50 * time.Second)); got != 12 {
		t.Errorf("after 50s: %d, want 12", got)
	}
	if got := w.LastMinute(at.Add(65 * time.Second)); got != 7 {
		t.Errorf("after 65s: %d, want 7 (the first add is over a minute old)", got)
	}
	if got := w.LastMinute(at.Add(-time.Minute)); got != 0 {
		t.Errorf("a minute before anything was added: %d, want 0", got)
	}
}

func TestAClientsShareOfServerTimeIsTwoWindowsDivided(t *testing.T) {
	var pool, client Window
	pool.AddAt(int64(3*time.Second), at)
	client.AddAt(int64(time.Second), at)
	pool.AddAt(int64(time.Second), at.Add(10*time.Second))
	share := float64(client.LastMinute(at.Add(15*time.Second))) / float64(pool.LastMinute(at.Add(15*time.Second)))
	if share != 0.25 {
		t.Errorf("share %v, want 0.25", share)
	}
}

func TestConcurrentAddsToAWindowAddUpExactly(t *testing.T) {
	var w Window
	w.AddAt(0, at)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10_000 {
				w.AddAt(3, at)
			}
		})
	}
	wg.Wait()
	if got := w.LastMinute(at); got != 240_000 {
		t.Errorf("%d, want 240000", got)
	}
}

func TestACounterKeepsItsTotalAfterItsLastMinuteForgets(t *testing.T) {
	var c Counter
	c.AddAt(100, at)
	c.AddAt(20, at.Add(30*time.Second))
	if got := c.LastMinute(at.Add(80 * time.Second)); got != 20 {
		t.Errorf("last minute after 80s: %d, want 20", got)
	}
	if got := c.Total(); got != 120 {
		t.Errorf("total %d, want 120", got)
	}
}
