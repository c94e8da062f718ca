package difftest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Target gives the connection string of a conversation's client.
type Target func(client int) string

// Replayer replays conversations in lockstep against PostgreSQL directly
// and through pgvalve, each client of the pooled side against its own
// direct connection.
type Replayer struct {
	Direct, Valve Target
	// Timeout bounds each step's answer on either side; a side that has
	// not answered by then has hung.
	Timeout time.Duration
	// KeepGoing replays the steps after a difference too (the named cases
	// check several clients), except those of the client that saw it: its
	// pooled connection is no longer in step with its direct one.
	KeepGoing bool
	// Pause, if set, is waited before each step, so that clients idle
	// between their steps have time to park (client_park_delay).
	Pause time.Duration
}

// Difference is the first place where pgvalve's answer differed from
// PostgreSQL's.
type Difference struct {
	Step  int // -1: the login
	Conv  Conversation
	Index int // the first differing message
	Want  Reply
	Got   Reply
	Login string // a login difference, said in words
}

// Run replays conv. It returns the first difference (all of them with
// KeepGoing), or an error when the harness itself failed: a direct
// connection that could not log in or did not answer as the generator
// expected (a generator bug, not pgvalve's).
func (r *Replayer) Run(ctx context.Context, conv Conversation) ([]*Difference, error) {
	direct, valve := make([]*Conn, conv.Clients), make([]*Conn, conv.Clients)
	defer closeAll(direct)
	defer closeAll(valve)
	for i := range conv.Clients {
		var err error
		params := map[string]string{}
		if i < len(conv.AppNames) && conv.AppNames[i] != "" {
			params["application_name"] = conv.AppNames[i]
		}
		if direct[i], err = Dial(ctx, r.Direct(i), params); err != nil {
			return nil, fmt.Errorf("client %d: direct login: %w", i, err)
		}
		if valve[i], err = Dial(ctx, r.Valve(i), params); err != nil {
			return []*Difference{{Step: -1, Conv: conv, Login: fmt.Sprintf("client %d: login through pgvalve failed: %v", i, err)}}, nil
		}
		if d := loginDifference(direct[i].Params, valve[i].Params); d != "" {
			return []*Difference{{Step: -1, Conv: conv, Login: fmt.Sprintf("client %d: %s", i, d)}}, nil
		}
	}
	var diffs []*Difference
	ended := make([]bool, conv.Clients)
	for i, st := range conv.Steps {
		if ended[st.Client] {
			continue
		}
		time.Sleep(r.Pause)
		want, got := r.exchange(direct[st.Client], valve[st.Client], st)
		if want.Err != nil {
			return diffs, fmt.Errorf("step %d (client %d, %s): PostgreSQL did not answer as the generator expected "+
				"(%d ReadyForQuery, %d more): %v after %d messages; batch %s",
				i, st.Client, st.What, st.Ready, st.Extra, want.Err, len(want.Msgs), DescribeBatch(st.Batch))
		}
		if st.Notifies > 0 {
			want.Msgs, got.Msgs = Reorder(want.Msgs), Reorder(got.Msgs)
		}
		at := FirstDifference(want.Msgs, got.Msgs)
		if at < 0 && got.Err == nil {
			continue
		}
		if at < 0 {
			at = len(got.Msgs)
		}
		diffs = append(diffs, &Difference{Step: i, Conv: conv, Index: at, Want: want, Got: got})
		if !r.KeepGoing {
			return diffs, nil
		}
		ended[st.Client] = true
	}
	return diffs, nil
}

// exchange sends one step to PostgreSQL, then to pgvalve, whose answer is
// read only until it differs. pgvalve gets a shorter deadline, scaled to
// how long PostgreSQL took, so that a pgvalve that hangs costs seconds.
func (r *Replayer) exchange(direct, valve *Conn, st Step) (want, got Reply) {
	wire := Wire(st.Batch)
	start := time.Now()
	want = direct.Exchange(st, wire, r.Timeout, nil)
	if want.Err != nil {
		return want, Reply{}
	}
	timeout := min(r.Timeout, 15*time.Second+20*time.Since(start))
	if st.Notifies > 0 {
		return want, valve.Exchange(st, wire, timeout, nil) // the order may differ: read it all
	}
	return want, valve.Exchange(st, wire, timeout, want.Msgs)
}

func closeAll(cs []*Conn) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// loginDifference compares the parameters reported at login, as sets: the
// rest of the login (authentication, BackendKeyData, the order of the
// reports) is pgvalve's own by design.
func loginDifference(want, got map[string]string) string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[k]; !ok || g != want[k] {
			diffs = append(diffs, fmt.Sprintf("%s: PostgreSQL %q, pgvalve %q", k, want[k], g))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: only pgvalve reports it (%q)", k, got[k]))
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	return "login parameters differ: " + strings.Join(diffs, "; ")
}

// String is the report: where, what was sent, and the first differing
// message pair decoded.
func (d *Difference) String() string {
	var sb strings.Builder
	if d.Step < 0 {
		sb.WriteString(d.Login)
		return sb.String()
	}
	st := d.Conv.Steps[d.Step]
	fmt.Fprintf(&sb, "step %d of %d, client %d of %d: %s\n", d.Step, len(d.Conv.Steps), st.Client, d.Conv.Clients, st.What)
	fmt.Fprintf(&sb, "  batch: %s\n", DescribeBatch(st.Batch))
	if len(st.Cuts) > 0 {
		fmt.Fprintf(&sb, "  written in %d pieces, cut at bytes %v (pauses %v)\n", len(st.Cuts)+1, st.Cuts, st.Pause)
	}
	fmt.Fprintf(&sb, "  answers differ at message %d of PostgreSQL's %d\n", d.Index, len(d.Want.Msgs))
	if d.Index > 0 {
		fmt.Fprintf(&sb, "  equal before it: %s\n", typesOf(d.Want.Msgs[:d.Index]))
	}
	fmt.Fprintf(&sb, "  PostgreSQL: %s\n", describeAt(d.Want, d.Index))
	fmt.Fprintf(&sb, "  pgvalve:    %s", describeAt(d.Got, d.Index))
	return sb.String()
}

// describeAt reads message i of r, or says why there is none.
func describeAt(r Reply, i int) string {
	if i < len(r.Msgs) {
		return DescribeReply(r.Msgs[i])
	}
	if r.Err != nil {
		return fmt.Sprintf("nothing more (%v)", r.Err)
	}
	return "nothing more"
}

// typesOf names messages briefly, runs folded: "1 2 T D×3 C Z".
func typesOf(ms []Msg) string {
	batch := make([]Msg, len(ms))
	for i, m := range ms {
		batch[i] = Msg{Type: m.Type}
	}
	s := DescribeBatch(batch)
	return strings.ReplaceAll(s, "(5)", "")
}

// Summary lists a conversation's steps up to upTo, one line a step, for a
// report of a difference that only earlier steps explain.
func (c Conversation) Summary(upTo int) string {
	var sb strings.Builder
	for i, st := range c.Steps[:min(upTo+1, len(c.Steps))] {
		fmt.Fprintf(&sb, "  %2d client %d: %s [%s]\n", i, st.Client, st.What, DescribeBatch(st.Batch))
	}
	return sb.String()
}
