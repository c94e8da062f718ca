package loadgen

import (
	"math"
	"strconv"
	"testing"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

// 1 ms to 1000 ms, once each: the quantiles are known exactly.
func TestQuantilesOfAKnownDistributionAreWithinTheHistogramsPrecision(t *testing.T) {
	h := NewHist(3)
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Summary()
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", s.P50, 500}, {"p95", s.P95, 950}, {"p99", s.P99, 990}, {"max", s.Max, 1000}} {
		if math.Abs(c.got-c.want) > c.want*0.001+0.001 {
			t.Errorf("%s = %v ms; want %v within 0.1%%", c.name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("count %d; want 1000", s.Count)
	}
}

func TestMergedHistogramsCountBoth(t *testing.T) {
	a, b := NewHist(3), NewHist(2)
	for range 10 {
		a.Record(time.Millisecond)
		b.Record(time.Second)
	}
	a.Merge(b)
	if s := a.Summary(); s.Count != 20 || s.P50 > 1.01 || s.Max < 995 {
		t.Fatalf("merged: %+v; want 20 values, half at 1 ms and half at 1 s", s)
	}
}

func TestLatenciesOutOfRangeAreClampedNotLost(t *testing.T) {
	h := NewHist(2)
	h.Record(-time.Second)
	h.Record(time.Hour)
	if s := h.Summary(); s.Count != 2 || s.Max < float64(maxLatency.Milliseconds())*0.99 {
		t.Fatalf("%+v; want both counted, the hour as the histogram's largest value", s)
	}
}
