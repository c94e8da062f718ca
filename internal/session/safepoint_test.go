package session

import "testing"

// step is one event the relay sees: client messages forwarded in one batch
// (client != ""), a ReadyForQuery from the server (ready != 0), or a
// CopyInResponse (copyIn).
type step struct {
	client string
	ready  byte
	copyIn bool
}

// copyIn is the server's CopyInResponse.
var copyIn = step{copyIn: true}

func run(steps []step) txState {
	t := freshState()
	for _, s := range steps {
		switch {
		case s.client != "":
			var types []byte
			for i := 0; i < len(s.client); i++ {
				if counted(s.client[i]) {
					types = append(types, s.client[i])
				}
			}
			t.forwarded(types, s.client[len(s.client)-1], false)
		case s.copyIn:
			t.copyStarted()
		default:
			t.ready(s.ready)
		}
	}
	return t
}

func TestSafePointDecisions(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
		safe  bool
		idle  bool
	}{
		{"a fresh server is safe", nil, true, true},
		{"a simple query in flight is not safe", []step{{client: "Q"}}, false, false},
		{"a simple query answered is safe", []step{{client: "Q"}, {ready: 'I'}}, true, true},
		{"BEGIN by simple query holds the server", []step{{client: "Q"}, {ready: 'T'}}, false, true},
		{"COMMIT by simple query frees it", []step{{client: "Q"}, {ready: 'T'}, {client: "Q"}, {ready: 'I'}}, true, true},
		{"a failed transaction holds the server", []step{{client: "Q"}, {ready: 'E'}}, false, true},
		{"ROLLBACK of a failed transaction frees it", []step{{client: "Q"}, {ready: 'E'}, {client: "Q"}, {ready: 'I'}}, true, true},
		{"extended query before Sync is not safe", []step{{client: "PBDE"}}, false, false},
		{"extended query with Sync in flight", []step{{client: "PBDES"}}, false, false},
		{"extended query answered", []step{{client: "PBDES"}, {ready: 'I'}}, true, true},
		{"BEGIN by extended query holds the server", []step{{client: "PBES"}, {ready: 'T'}}, false, true},
		{"pipeline of three syncs: one answer is not enough", []step{{client: "PBESPBESPBES"}, {ready: 'I'}}, false, false},
		{"pipeline of three syncs: all answered", []step{{client: "PBESPBESPBES"}, {ready: 'I'}, {ready: 'I'}, {ready: 'I'}}, true, true},
		{"pipeline with an error inside: the server skips to Sync, one answer each",
			[]step{{client: "PBESPBES"}, {ready: 'I'}, {ready: 'I'}}, true, true},
		{"pipeline sent in two batches, second without Sync", []step{{client: "PBES"}, {client: "PB"}, {ready: 'I'}}, false, false},
		{"Flush without Sync leaves the server mid-request", []step{{client: "PBEH"}}, false, false},
		{"COPY FROM STDIN while data flows", []step{{client: "Q"}, {client: "dd"}}, false, false},
		{"COPY FROM STDIN after CopyDone, before the answer", []step{{client: "Q"}, {client: "ddc"}}, false, false},
		{"COPY FROM STDIN answered", []step{{client: "Q"}, {client: "ddc"}, {ready: 'I'}}, true, true},
		{"COPY FROM STDIN failed by the client", []step{{client: "Q"}, {client: "df"}, {ready: 'I'}}, true, true},
		{"COPY failed by the server, client still sending data", []step{{client: "Q"}, {client: "d"}, {ready: 'I'}, {client: "d"}}, false, false},
		{"COPY failed by the server, client's trailing CopyDone needs no answer", []step{{client: "Q"}, {client: "d"}, {ready: 'I'}, {client: "dc"}}, true, true},
		{"function call answered", []step{{client: "F"}, {ready: 'I'}}, true, true},
		// libpq's PQexecParams of a COPY sends Sync right after Execute and
		// another after CopyDone; PostgreSQL ignores the first.
		{"a Sync sent before COPY FROM STDIN began is ignored by the server",
			[]step{{client: "PBDES"}, copyIn, {client: "ddc"}, {client: "S"}, {ready: 'I'}}, true, true},
		{"Syncs and Flushes sent during COPY FROM STDIN get no answer",
			[]step{{client: "PBE"}, copyIn, {client: "dSdHS"}, {client: "cS"}, {ready: 'I'}}, true, true},
		{"COPY data, CopyDone and Sync all sent before the COPY began",
			[]step{{client: "PBESddcS"}, copyIn, {ready: 'I'}}, true, true},
		{"a Sync after CopyDone is still awaited", []step{{client: "PBESddcS"}, copyIn}, false, false},
		{"a pipelined request after the COPY is still awaited",
			[]step{{client: "PBESddcSQ"}, copyIn, {ready: 'I'}}, false, false},
		{"a simple-query COPY ignores Syncs up to its CopyDone",
			[]step{{client: "Q"}, copyIn, {client: "dSdc"}, {ready: 'I'}}, true, true},
		{"an extended COPY's CopyDone leaves the server owing the Execute's answer until Sync",
			[]step{{client: "PBDES"}, copyIn, {client: "dc"}}, false, false},
		{"an extended COPY is over at the Sync's answer",
			[]step{{client: "PBDES"}, copyIn, {client: "dc"}, {client: "S"}, {ready: 'I'}}, true, true},
		{"a Sync before the COPY began is answered when the COPY never begins",
			[]step{{client: "PBDES"}, {ready: 'I'}}, true, true},
		{"Close and Sync answered", []step{{client: "CS"}, {ready: 'I'}}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := run(tc.steps)
			if st.safe() != tc.safe || st.idle() != tc.idle {
				t.Fatalf("state %+v: safe=%v idle=%v, want safe=%v idle=%v", st, st.safe(), st.idle(), tc.safe, tc.idle)
			}
		})
	}
}
