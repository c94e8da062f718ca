package stmt

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// seedPrograms are interesting starting points for the fuzzer.
var seedPrograms = map[string][]op{
	"prepare, bind and execute on shared backends": slices.Concat(
		[]op{oPrepare(0, "s1", "SELECT 1", 0), oBindExec(0, "s1", 0)}, roundTrip(0),
		[]op{oPrepare(1, "s2", "SELECT 1", 0), oBindExec(1, "s2", 0)}, roundTrip(1),
		[]op{oBindExec(0, "s1", 0)}, roundTrip(0),
	),
	"a pipeline with an error in the middle": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oBind(0, "", "s1", 0), oExec(0, ""), oParse(0, "s2", "SELECT fail", 0),
			oBind(0, "", "s2", 0), oExec(0, ""), oParse(0, "S1", "SELECT 2", 0), oSync(0), oBindExec(0, "s1", 0)}, roundTrip(0),
	),
	"a duplicate Parse": slices.Concat(
		[]op{oParse(1, "s1", "SELECT 1", 0), oSync(1)}, roundTrip(1),
		[]op{oParse(1, "s1", "SELECT 2", 0), oBind(1, "", "s1", 0), oSync(1)}, roundTrip(1),
		[]op{oBindExec(1, "s1", 0)}, roundTrip(1),
	),
	"Close then Parse again": slices.Concat(
		[]op{oParse(2, "s2", "SELECT 2", 1), oSync(2)}, roundTrip(2),
		[]op{oCloseS(2, "s2"), oParse(2, "s2", "SELECT 3", 0), oBindExec(2, "s2", 0)}, roundTrip(2),
		[]op{oCloseS(2, "s2"), oSync(2)}, roundTrip(2),
		[]op{oParse(2, "s2", "SELECT 2", 1), oBindExec(2, "s2", 1)}, roundTrip(2),
	),
	"eviction churn": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oParse(0, "s2", "SELECT 2", 0), oParse(0, "S1", "SELECT 3", 0), oSync(0)}, roundTrip(0),
		[]op{oParse(1, "s1", "SELECT 4", 0), oParse(1, "s2", "SELECT 5", 0), oSync(1)}, roundTrip(1),
		[]op{oBindExec(0, "s1", 0), oBindExec(0, "S1", 0)}, roundTrip(0),
		[]op{oBindExec(1, "s2", 0), oBindExec(1, "s1", 0)}, roundTrip(1),
		[]op{oBindExec(0, "s2", 0), oDescS(0, "s1"), oSync(0)}, roundTrip(0),
	),
	"DEALLOCATE a name and all": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oParse(0, "s2", "SELECT 2", 0), oSync(0)}, roundTrip(0),
		[]op{oQuery(0, "DEALLOCATE s1"), oBindExec(0, "s2", 0), oBindExec(0, "s1", 0)}, roundTrip(0),
		[]op{oQuery(0, "DEALLOCATE ALL"), oBindExec(0, "s2", 0)}, roundTrip(0),
	),
	"a pipeline split after an error, before its Sync": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oBind(0, "", "s2", 0), oFlush(0)}, roundTrip(0),
		[]op{oBind(0, "", "s1", 0), oExec(0, ""), oSync(0)}, roundTrip(0),
	),
	"unnamed statements moving between servers": slices.Concat(
		[]op{oParseU(0, "SELECT 1", 0), oDescS(0, ""), oSync(0)}, roundTrip(0),
		[]op{oParseU(1, "SELECT 2", 0), oDescS(1, ""), oSync(1)}, roundTrip(1),
		[]op{oBindExec(0, "", 0), oSend(0, 1), oRecv(0, 7), oBindExec(1, "", 0)}, roundTrip(1),
	),
	"a transaction spanning round trips": slices.Concat(
		[]op{oQuery(1, "BEGIN")}, roundTrip(1),
		[]op{oParse(1, "s1", "SELECT 1", 0), oBindExec(1, "s1", 0)}, roundTrip(1),
		[]op{oPrepare(0, "s1", "SELECT 1", 0), oBindExec(0, "s1", 0)}, roundTrip(0),
		[]op{oQuery(1, "COMMIT"), oRun(1, "SELECT 2", 0)}, roundTrip(1),
	),
}

// runProgram runs one program outside strict mode, where known bugs are
// counted and the books repaired, and returns the sim for its tallies.
func runProgram(t testing.TB, prog []op) *sim {
	s := newSim(t, simClients, simBackends, simMax, false)
	s.run(prog)
	return s
}

func FuzzTrackerMatchesADedicatedServer(f *testing.F) {
	for _, p := range seedPrograms {
		f.Add(encodeProgram(p))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runProgram(t, decodeProgram(data))
	})
}

func TestTrackerMatchesADedicatedServer(t *testing.T) {
	for name, p := range seedPrograms {
		t.Run(name, func(t *testing.T) {
			s := runProgram(t, p)
			for k := range s.hits {
				t.Logf("struck by: %s", k)
			}
			if s.known != "" {
				t.Logf("ended: %s", s.known)
			}
		})
	}
	t.Run("random programs", func(t *testing.T) {
		known := map[string]int{}
		hits := map[string]int{}
		allowed := map[string]int{}
		n := 3000
		if testing.Short() {
			n = 300
		}
		for i := range n {
			r := rand.New(rand.NewPCG(uint64(i), 42))
			data := make([]byte, 2*(20+r.IntN(200)))
			for j := range data {
				data[j] = byte(r.Uint32())
			}
			s := runProgram(t, decodeProgram(data))
			if s.known != "" {
				known[s.known]++
			}
			for k, v := range s.hits {
				hits[k] += v
			}
			for k, v := range s.allowed {
				allowed[k] += v
			}
		}
		for k, v := range known {
			t.Logf("%4d runs ended by: %s", v, k)
		}
		for k, v := range hits {
			t.Logf("%5d differences explained by: %s", v, k)
		}
		for k, v := range allowed {
			t.Logf("%4d answers passed over: %s", v, k)
		}
	})
}
