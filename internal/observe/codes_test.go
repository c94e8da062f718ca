package observe

import (
	"maps"
	"sync"
	"testing"
)

func TestCodesCountEachSQLStateApartAndSkipNone(t *testing.T) {
	var c Codes
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				c.Add("53300")
				c.Add("08006")
				c.Add("")
			}
		})
	}
	wg.Wait()
	want := map[string]int64{"53300": 4000, "08006": 4000}
	if got := c.Counts(); !maps.Equal(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}

func TestANilCodesCountsNothing(t *testing.T) {
	var c *Codes
	c.Add("53300")
	if got := c.Counts(); len(got) != 0 {
		t.Errorf("a nil Codes counted %v", got)
	}
}
