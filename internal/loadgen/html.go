package loadgen

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"os"
	"strings"
	"time"
)

//go:embed report.html
var reportHTML string

var reportTmpl = template.Must(template.New("report").Parse(reportHTML))

// htmlReport is what report.html shows.
type htmlReport struct {
	Title, Started, LoadLine string
	Legend                   []series
	Charts                   []chart
	Rows                     []htmlRow
	Errors, Events           []string
}

type htmlRow struct {
	Phase, Target, PagesPerSec, P50, P95, P99, Max, QueryP95 string
	FailedQueries, FailedPages, ServerConns, PoolerCPU       string
	Users                                                    int
}

// WriteHTML writes a self-contained report to path: the charts inline as
// SVG, the styles inline, nothing fetched from anywhere.
func (res *Result) WriteHTML(path string) error {
	var b strings.Builder
	if err := reportTmpl.Execute(&b, res.html()); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (res *Result) html() htmlReport {
	l := res.Load
	r := htmlReport{Title: strings.Join(shortTargets(res.Targets), " vs "), Started: res.Started.Format(time.RFC1123),
		LoadLine: fmt.Sprintf("%d users over %d app instances × %d-connection pools, %d workers, %s queries a page, %s phases, prepared %v, retry %d",
			l.Users, l.AppInstances, l.ClientPool, l.Workers, l.Page, time.Duration(l.PhaseSeconds*float64(time.Second)), l.Prepared, l.ClientRetry)}
	for i, t := range shortTargets(res.Targets) {
		r.Legend = append(r.Legend, series{Name: t, Class: fmt.Sprintf("t%d", i%4)})
	}
	r.Charts = res.charts()
	for _, row := range res.Rows() {
		r.Rows = append(r.Rows, htmlRow{Phase: row.Phase, Target: shortTarget(row.Target), Users: row.Users,
			PagesPerSec: fmt.Sprintf("%.1f", perSecond(row.Pages, row.Seconds)), P50: ms(row.Page.P50), P95: ms(row.Page.P95),
			P99: ms(row.Page.P99), Max: ms(row.Page.Max), QueryP95: ms(row.Query.P95), FailedQueries: share(row.Failed, row.Queries),
			FailedPages: share(row.FailedPages, row.Pages), ServerConns: optInt(row.MaxServerConns), PoolerCPU: optPct(row.PoolerCPU)})
		for _, e := range row.Errors {
			r.Errors = append(r.Errors, fmt.Sprintf("%s, %s: %s %s × %d", row.Phase, shortTarget(row.Target), e.Class, e.Code, e.Count))
		}
	}
	for _, run := range res.Runs {
		for _, e := range run.Events {
			r.Events = append(r.Events, fmt.Sprintf("%s, round %d, at %.0f s: %s", shortTarget(res.Targets[run.Target]), run.Round+1, e.At, e.What))
		}
	}
	return r
}

// charts are the timelines of each target's first round, overlaid: page
// latency, pages, failed queries, and what the observers saw.
func (res *Result) charts() []chart {
	metric := func(id, title, unit string, f func(Second) float64) chart {
		c := chart{ID: id, Title: title, Unit: unit}
		for _, run := range res.Runs {
			if run.Round != 0 {
				continue
			}
			s := series{Name: shortTarget(res.Targets[run.Target]), Class: fmt.Sprintf("t%d", run.Target%4)}
			for _, sec := range run.Timeline {
				s.Points = append(s.Points, [2]float64{sec.At, f(sec)})
			}
			c.Series = append(c.Series, s)
			if c.Phases == nil {
				c.Phases = phaseMarks(run.Timeline)
			}
		}
		return c
	}
	nan := math.NaN()
	return []chart{
		metric("page-p95", "Page latency, p95 over each second", "ms", func(s Second) float64 {
			if s.Pages == 0 || s.PageP95 == 0 { // no page, or none that succeeded
				return nan
			}
			return s.PageP95
		}),
		metric("pages", "Pages per second", "", func(s Second) float64 { return float64(s.Pages) }),
		metric("errors", "Failed queries per second", "", func(s Second) float64 { return float64(s.Errors) }),
		metric("server-conns", "Server connections (the observed PostgreSQL's client backends)", "", func(s Second) float64 {
			return optValue(s.ServerConns)
		}),
		metric("pooler-cpu", "Pooler CPU (% of a core)", "%", func(s Second) float64 { return optFloat(s.PoolerCPU) }),
	}
}

// phaseMarks are where each phase begins on a timeline.
func phaseMarks(tl []Second) []phaseMark {
	var out []phaseMark
	prev := ""
	for _, s := range tl {
		if s.Phase != prev {
			out = append(out, phaseMark{At: math.Max(s.At-1, 0), Name: s.Phase})
			prev = s.Phase
		}
	}
	return out
}

func shortTargets(ts []string) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = shortTarget(t)
	}
	return out
}

func optValue(v *int) float64 {
	if v == nil {
		return math.NaN()
	}
	return float64(*v)
}

func optFloat(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}
