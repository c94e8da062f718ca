package session

import "testing"

// step is one event the relay sees: client messages forwarded in one batch
// (client != "") or a ReadyForQuery from the server (ready != 0).
type step struct {
	client string
	ready  byte
}

func run(steps []step) txState {
	t := freshState()
	for _, s := range steps {
		if s.client != "" {
			requests := 0
			for i := 0; i < len(s.client); i++ {
				if _, wants := requestEnds(s.client[i]); wants {
					requests++
				}
			}
			t.forwarded(requests, s.client[len(s.client)-1], false)
		} else {
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
