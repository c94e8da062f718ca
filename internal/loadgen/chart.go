package loadgen

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// chart is one SVG line chart of the report: a line per series over the
// seconds of a run, drawn in Go so that the report needs no script.
type chart struct {
	ID, Title, Unit string
	Series          []series
	Phases          []phaseMark
	Width, Height   int
}

type series struct {
	Name   string
	Class  string       // the target's colour: t0, t1, ...
	Points [][2]float64 // (seconds, value); NaN breaks the line
}

type phaseMark struct {
	At   float64
	Name string
}

// chart geometry: margins for the axis labels.
const (
	chartW, chartH                  = 900, 220
	marginL, marginR, marginT, marB = 64, 16, 12, 34
)

// SVG renders the chart. Its data-points attribute counts the values
// drawn, for tests and the curious.
func (c chart) SVG() template.HTML {
	w, h := chartW, chartH
	tmax, vmax, n := 1.0, 0.0, 0
	for _, s := range c.Series {
		for _, p := range s.Points {
			tmax = math.Max(tmax, p[0])
			if !math.IsNaN(p[1]) {
				vmax, n = math.Max(vmax, p[1]), n+1
			}
		}
	}
	ymax := niceMax(vmax)
	x := func(t float64) float64 { return marginL + float64(w-marginL-marginR)*t/tmax }
	y := func(v float64) float64 { return marginT + float64(h-marginT-marB)*(1-v/ymax) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" class="chart" viewBox="0 0 %d %d" data-points="%d" role="img" aria-label="%s">`,
		template.HTMLEscapeString(c.ID), w, h, n, template.HTMLEscapeString(c.Title))
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, marginL, w-marginR, y(f*ymax), y(f*ymax))
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, marginL-6, y(f*ymax)+4,
			template.HTMLEscapeString(fmtValue(f*ymax, c.Unit)))
	}
	for _, p := range c.Phases {
		fmt.Fprintf(&b, `<line class="phase" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>`, x(p.At), x(p.At), marginT, h-marB)
		fmt.Fprintf(&b, `<text class="phase" x="%.1f" y="%d">%s</text>`, x(p.At)+3, h-marB+14, template.HTMLEscapeString(p.Name))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d" text-anchor="end">%.0f s</text>`, w-marginR, h-4, tmax)
	for _, s := range c.Series {
		fmt.Fprintf(&b, `<path class="line %s" d="%s"><title>%s</title></path>`, s.Class, path(s.Points, x, y),
			template.HTMLEscapeString(s.Name))
	}
	if n == 0 {
		fmt.Fprintf(&b, `<text class="nodata" x="%d" y="%d" text-anchor="middle">no data</text>`, w/2, h/2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text in it is escaped above
}

// path is an SVG path through points, a break at each NaN.
func path(points [][2]float64, x, y func(float64) float64) string {
	var b strings.Builder
	pen := false
	for _, p := range points {
		if math.IsNaN(p[1]) {
			pen = false
			continue
		}
		op := "L"
		if !pen {
			op, pen = "M", true
		}
		fmt.Fprintf(&b, "%s%.1f,%.1f", op, x(p[0]), y(p[1]))
	}
	return b.String()
}

// niceMax rounds up to 1, 2 or 5 times a power of ten.
func niceMax(v float64) float64 {
	if !(v > 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtValue(v float64, unit string) string {
	if unit == "ms" && v >= 1000 {
		return fmt.Sprintf("%.3g s", v/1000)
	}
	return strings.TrimSpace(fmt.Sprintf("%.3g %s", v, unit))
}
