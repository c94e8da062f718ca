package stmt

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
)

// A program is what simulated clients do, two bytes an operation: the
// client and kind, then an argument whose bits pick names, texts and
// options. Any bytes decode, so the fuzzer's inputs are programs.
type op struct {
	client int
	kind   opKind
	arg    byte
}

type opKind byte

const (
	opParse        opKind = iota // arg: name&3, query>>2&15, params>>6&1
	opParseUnnamed               // arg: query&15, params>>4&1
	opBind                       // arg: statement (&7)%5, portal>>3&1, params>>4&1
	opDescribeS                  // arg: statement (&7)%5
	opDescribeP                  // arg: portal&1
	opExecute                    // arg: portal&1
	opCloseS                     // arg: statement (&7)%5
	opCloseP                     // arg: portal&1
	opSync
	opFlush
	opQuery      // arg: simple query &15
	opSend       // arg: Sync unless &3 == 0, preferred backend for a new lease >>2
	opReceive    // arg: answer bytes per read, minus one
	opBindExec   // Bind "" (arg: statement (&7)%5, params>>3&1), Execute, Sync
	opPrepare    // Parse (arg as opParse), Sync, send: what PQprepare does
	opUnnamedRun // Parse "", Bind, Describe P, Execute, Sync (arg as opParseUnnamed)
)

const simClients, simBackends, simMax = 3, 3, 3

var (
	simNames   = []string{"s1", "s2", "S1", `q"t`}
	simTargets = []string{"s1", "s2", "S1", `q"t`, ""} // statements, the unnamed one last
	simPortals = []string{"", "p1"}
	simQueries = []string{"SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4", "SELECT fail", "SELECT boom", "BEGIN", "COMMIT",
		"ROLLBACK", "SELECT 1", "SELECT 2", "SELECT 5", "DEALLOCATE ALL", "DEALLOCATE s1", "SELECT 6", "DISCARD ALL"}
	simSimple = []string{"SELECT 1", "SELECT fail", "SELECT boom", "BEGIN", "COMMIT", "ROLLBACK", "DEALLOCATE ALL", "DEALLOCATE s1",
		"deallocate prepare s2;", "DEALLOCATE S1", `DEALLOCATE "S1"`, `DEALLOCATE "q""t"`, "DISCARD ALL", "DEALLOCATE nope", "BEGIN", "COMMIT"}
)

func decodeProgram(data []byte) []op {
	var prog []op
	for i := 0; i+1 < len(data); i += 2 {
		prog = append(prog, op{client: int(data[i]>>4) % simClients, kind: opKind(data[i] & 15), arg: data[i+1]})
	}
	return prog
}

func encodeProgram(prog []op) []byte {
	var b []byte
	for _, o := range prog {
		b = append(b, byte(o.client<<4)|byte(o.kind), o.arg)
	}
	return b
}

func index(list []string, s string) byte {
	i := slices.Index(list, s)
	if i < 0 {
		panic(fmt.Sprintf("%q is not in %q", s, list))
	}
	return byte(i)
}

// Constructors for hand-written programs.
func oParse(c int, name, q string, np int) op {
	return op{c, opParse, index(simNames, name) | index(simQueries, q)<<2 | byte(np)<<6}
}
func oParseU(c int, q string, np int) op {
	return op{c, opParseUnnamed, index(simQueries, q) | byte(np)<<4}
}
func oBind(c int, portal, stmt string, np int) op {
	return op{c, opBind, index(simTargets, stmt) | index(simPortals, portal)<<3 | byte(np)<<4}
}
func oDescS(c int, stmt string) op   { return op{c, opDescribeS, index(simTargets, stmt)} }
func oDescP(c int, portal string) op { return op{c, opDescribeP, index(simPortals, portal)} }
func oExec(c int, portal string) op  { return op{c, opExecute, index(simPortals, portal)} }
func oCloseS(c int, stmt string) op  { return op{c, opCloseS, index(simTargets, stmt)} }
func oSync(c int) op                 { return op{c, opSync, 0} }
func oFlush(c int) op                { return op{c, opFlush, 0} }
func oQuery(c int, q string) op      { return op{c, opQuery, index(simSimple, q)} }
func oSend(c, backend int) op        { return op{c, opSend, byte(backend << 2)} }
func oRecv(c, chunk int) op          { return op{c, opReceive, byte(chunk - 1)} }
func oBindExec(c int, stmt string, np int) op {
	return op{c, opBindExec, index(simTargets, stmt) | byte(np)<<3}
}
func oPrepare(c int, name, q string, np int) op {
	o := oParse(c, name, q, np)
	o.kind = opPrepare
	return o
}
func oRun(c int, q string, np int) op {
	o := oParseU(c, q, np)
	o.kind = opUnnamedRun
	return o
}

func (s *sim) apply(o op) {
	c, a := o.client, o.arg
	switch o.kind {
	case opParse, opPrepare:
		s.msg(c, mParse(simNames[a&3], simQueries[a>>2&15], int(a>>6&1)))
		if o.kind == opPrepare {
			s.msg(c, mSync)
			s.send(c, int(a>>7))
		}
	case opParseUnnamed, opUnnamedRun:
		s.msg(c, mParse("", simQueries[a&15], int(a>>4&1)))
		if o.kind == opUnnamedRun {
			s.msg(c, mBind("", "", int(a>>4&1)))
			s.msg(c, mDescribe('P', ""))
			s.msg(c, mExecute(""))
			s.msg(c, mSync)
		}
	case opBind:
		s.msg(c, mBind(simPortals[a>>3&1], simTargets[(a&7)%5], int(a>>4&1)))
	case opDescribeS:
		s.msg(c, mDescribe('S', simTargets[(a&7)%5]))
	case opDescribeP:
		s.msg(c, mDescribe('P', simPortals[a&1]))
	case opExecute:
		s.msg(c, mExecute(simPortals[a&1]))
	case opCloseS:
		s.msg(c, mClose('S', simTargets[(a&7)%5]))
	case opCloseP:
		s.msg(c, mClose('P', simPortals[a&1]))
	case opSync:
		s.msg(c, mSync)
	case opFlush:
		s.msg(c, mFlush)
	case opQuery:
		s.msg(c, mQuery(simSimple[a&15]))
	case opSend:
		// Mostly whole pipelines: a Sync ends the batch unless arg&3 == 0.
		if cl := s.clients[c]; a&3 != 0 && len(cl.unsent) > 0 && cl.unsent[len(cl.unsent)-5] != 'S' {
			s.msg(c, mSync)
		}
		s.send(c, int(a>>2))
	case opReceive:
		s.receive(c, 1+int(a))
	case opBindExec:
		s.msg(c, mBind("", simTargets[(a&7)%5], int(a>>3&1)))
		s.msg(c, mExecute(""))
		s.msg(c, mSync)
	}
}

// run runs a program, then syncs, sends and receives for every client.
func (s *sim) run(prog []op) {
	for _, o := range prog {
		if s.stopped() {
			return
		}
		s.apply(o)
	}
	for c, cl := range s.clients {
		if len(cl.unsent) > 0 || cl.lastSent != 0 && cl.lastSent != 'S' && cl.lastSent != 'Q' {
			s.msg(c, mSync)
		}
		s.send(c, 0)
		s.receive(c, 256)
	}
}

// seedPrograms are interesting starting points for the fuzzer.
var seedPrograms = map[string][]op{
	"prepare, bind and execute on shared backends": slices.Concat(
		[]op{oPrepare(0, "s1", "SELECT 1", 0), oBindExec(0, "s1", 0)}, rt(0, 0),
		[]op{oPrepare(1, "s2", "SELECT 1", 0), oBindExec(1, "s2", 0)}, rt(1, 0),
		[]op{oBindExec(0, "s1", 0)}, rt(0, 0),
	),
	"a pipeline with an error in the middle": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oBind(0, "", "s1", 0), oExec(0, ""), oParse(0, "s2", "SELECT fail", 0),
			oBind(0, "", "s2", 0), oExec(0, ""), oParse(0, "S1", "SELECT 2", 0), oSync(0), oBindExec(0, "s1", 0)}, rt(0, 0),
	),
	"a duplicate Parse": slices.Concat(
		[]op{oParse(1, "s1", "SELECT 1", 0), oSync(1)}, rt(1, 0),
		[]op{oParse(1, "s1", "SELECT 2", 0), oBind(1, "", "s1", 0), oSync(1)}, rt(1, 0),
		[]op{oBindExec(1, "s1", 0)}, rt(1, 0),
	),
	"Close then Parse again": slices.Concat(
		[]op{oParse(2, "s2", "SELECT 2", 1), oSync(2)}, rt(2, 0),
		[]op{oCloseS(2, "s2"), oParse(2, "s2", "SELECT 3", 0), oBindExec(2, "s2", 0)}, rt(2, 0),
		[]op{oCloseS(2, "s2"), oSync(2)}, rt(2, 0),
		[]op{oParse(2, "s2", "SELECT 2", 1), oBindExec(2, "s2", 1)}, rt(2, 0),
	),
	"eviction churn": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oParse(0, "s2", "SELECT 2", 0), oParse(0, "S1", "SELECT 3", 0), oSync(0)}, rt(0, 0),
		[]op{oParse(1, "s1", "SELECT 4", 0), oParse(1, "s2", "SELECT 5", 0), oSync(1)}, rt(1, 0),
		[]op{oBindExec(0, "s1", 0), oBindExec(0, "S1", 0)}, rt(0, 0),
		[]op{oBindExec(1, "s2", 0), oBindExec(1, "s1", 0)}, rt(1, 0),
		[]op{oBindExec(0, "s2", 0), oDescS(0, "s1"), oSync(0)}, rt(0, 0),
	),
	"DEALLOCATE a name and all": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oParse(0, "s2", "SELECT 2", 0), oSync(0)}, rt(0, 0),
		[]op{oQuery(0, "DEALLOCATE s1"), oBindExec(0, "s2", 0), oBindExec(0, "s1", 0)}, rt(0, 0),
		[]op{oQuery(0, "DEALLOCATE ALL"), oBindExec(0, "s2", 0)}, rt(0, 0),
	),
	"a pipeline split after an error, before its Sync": slices.Concat(
		[]op{oParse(0, "s1", "SELECT 1", 0), oBind(0, "", "s2", 0), oFlush(0)}, rt(0, 0),
		[]op{oBind(0, "", "s1", 0), oExec(0, ""), oSync(0)}, rt(0, 0),
	),
	"unnamed statements moving between servers": slices.Concat(
		[]op{oParseU(0, "SELECT 1", 0), oDescS(0, ""), oSync(0)}, rt(0, 0),
		[]op{oParseU(1, "SELECT 2", 0), oDescS(1, ""), oSync(1)}, rt(1, 0),
		[]op{oBindExec(0, "", 0), oSend(0, 1), oRecv(0, 7), oBindExec(1, "", 0)}, rt(1, 0),
	),
	"a transaction spanning round trips": slices.Concat(
		[]op{oQuery(1, "BEGIN")}, rt(1, 0),
		[]op{oParse(1, "s1", "SELECT 1", 0), oBindExec(1, "s1", 0)}, rt(1, 0),
		[]op{oPrepare(0, "s1", "SELECT 1", 0), oBindExec(0, "s1", 0)}, rt(0, 0),
		[]op{oQuery(1, "COMMIT"), oRun(1, "SELECT 2", 0)}, rt(1, 0),
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
			prog := decodeProgram(data)
			if os.Getenv("STMT_DUMP") != "" {
				t.Logf("program %d: %v", i, prog)
			}
			s := runProgram(t, prog)
			if s.known != "" {
				known[s.known]++
			}
			for k, v := range s.hits {
				hits[k] += v
			}
		}
		for k, v := range known {
			t.Logf("%4d runs ended by: %s", v, k)
		}
		for k, v := range hits {
			t.Logf("%5d differences explained by: %s", v, k)
		}
	})
}
