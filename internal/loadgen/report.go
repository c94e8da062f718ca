package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// Row is one line of the side-by-side table: one phase of one target,
// its rounds merged.
type Row struct {
	Phase, Target  string
	Users          int
	Seconds        float64
	Pages, Queries int64
	FailedPages    int64
	Failed         int64
	Page, Query    Latency
	Errors         []ErrorCount
	MaxServerConns *int     // the most client backends the observed PostgreSQL had
	PoolerCPU      *float64 // mean, % of a core
	PoolerRSS      *float64 // most, MiB
}

// Rows merges each target's rounds, phase by phase, in phase order and
// then the targets' order.
func (res *Result) Rows() []Row {
	var rows []Row
	if len(res.Runs) == 0 {
		return nil
	}
	for pi, p := range res.Runs[0].Phases {
		for ti, target := range res.Targets {
			row := Row{Phase: p.Name, Target: target, Users: p.Users}
			merged := newCounts(3)
			for _, run := range res.Runs {
				if run.Target != ti || pi >= len(run.counts) {
					continue
				}
				c := run.counts[pi]
				row.Seconds += run.Phases[pi].Seconds
				merged.add(c)
				row.observe(run.Timeline, p.Name)
			}
			row.Pages, row.Queries, row.FailedPages, row.Failed = merged.pages.Load(), merged.queries.Load(),
				merged.failedPages.Load(), merged.failures()
			row.Page, row.Query, row.Errors = merged.pageLat.Summary(), merged.query.Summary(), merged.errorCounts()
			rows = append(rows, row)
		}
	}
	return rows
}

// add merges o's counts into c.
func (c *counts) add(o *counts) {
	c.pages.Add(o.pages.Load())
	c.queries.Add(o.queries.Load())
	c.failedPages.Add(o.failedPages.Load())
	c.pageLat.Merge(o.pageLat)
	c.query.Merge(o.query)
	for _, e := range o.errorCounts() {
		c.mu.Lock()
		c.fails[Failure{e.Class, e.Code}] += e.Count
		c.mu.Unlock()
	}
}

// observe folds in the samples of the phase's seconds.
func (r *Row) observe(timeline []Second, phase string) {
	var cpu float64
	n := 0
	for _, s := range timeline {
		if s.Phase != phase {
			continue
		}
		if s.ServerConns != nil && (r.MaxServerConns == nil || *s.ServerConns > *r.MaxServerConns) {
			v := *s.ServerConns
			r.MaxServerConns = &v
		}
		if s.PoolerCPU != nil {
			cpu += *s.PoolerCPU
			n++
		}
		if s.PoolerRSS != nil && (r.PoolerRSS == nil || *s.PoolerRSS > *r.PoolerRSS) {
			v := *s.PoolerRSS
			r.PoolerRSS = &v
		}
	}
	if n > 0 {
		mean := cpu / float64(n)
		r.PoolerCPU = &mean
	}
}

// WriteTable prints the side-by-side table.
func (res *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\ttarget\tusers\tpages/s\tpage p50\tp95\tp99\tmax\tquery p95\tfailed queries\tfailed pages\tserver conns\tpooler CPU\t")
	for _, r := range res.Rows() {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Phase, shortTarget(r.Target), r.Users,
			perSecond(r.Pages, r.Seconds), ms(r.Page.P50), ms(r.Page.P95), ms(r.Page.P99), ms(r.Page.Max), ms(r.Query.P95),
			share(r.Failed, r.Queries), share(r.FailedPages, r.Pages), optInt(r.MaxServerConns), optPct(r.PoolerCPU))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return res.writeErrors(w)
}

// writeErrors lists each row's errors by class and SQLSTATE.
func (res *Result) writeErrors(w io.Writer) error {
	var b strings.Builder
	for _, r := range res.Rows() {
		if len(r.Errors) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  %s, %s:", r.Phase, shortTarget(r.Target))
		for _, e := range r.Errors {
			code := ""
			if e.Code != "" {
				code = " " + e.Code
			}
			fmt.Fprintf(&b, " %s%s ×%d;", e.Class, code, e.Count)
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		_, err := fmt.Fprintln(w, "\nno errors")
		return err
	}
	_, err := fmt.Fprintf(w, "\nerrors, by what the app saw:\n%s", b.String())
	return err
}

// WriteJSON writes the whole result to path.
func (res *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func shortTarget(t string) string {
	t = strings.TrimPrefix(strings.TrimPrefix(t, "postgres://"), "postgresql://")
	if i := strings.IndexByte(t, '@'); i >= 0 {
		t = t[i+1:]
	}
	if i := strings.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	return t
}

func perSecond(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(n) / secs
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2fs", v/1000)
	}
	return fmt.Sprintf("%.1fms", v)
}

func share(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
}

func optInt(v *int) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}

func optPct(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", *v)
}
