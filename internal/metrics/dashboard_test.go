package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

const dashboardPath = "../../deploy/grafana/pgvalve.json"

type dashboard struct {
	SchemaVersion int `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name, Type string
			Query      any // a string for the datasource, an object for a query
		}
	}
	Panels []panel
}

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource struct{ Type, UID string }
	Targets    []struct {
		Expr       string
		Datasource struct{ Type, UID string }
	}
	Panels []panel // a collapsed row's
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s is not valid JSON", dashboardPath)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// exprs is every PromQL expression in d: its panels' targets and its
// template variables' queries.
func (d *dashboard) exprs() []string {
	var out []string
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, t.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			out = append(out, q["query"].(string))
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\bpgvalve_[a-zA-Z0-9_]+`)

// emitted is every series name a scrape of the fake source shows,
// histograms under each name PromQL knows them by.
func emitted(t *testing.T) map[string]bool {
	names := map[string]bool{}
	for name, mf := range scrapeText(t, appSource()) {
		names[name] = true
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[name+s] = true
			}
		}
	}
	return names
}

func TestTheDashboardOnlyQueriesMetricsTheExporterEmits(t *testing.T) {
	d := readDashboard(t)
	have := emitted(t)
	used := map[string]bool{}
	for _, e := range d.exprs() {
		for _, name := range metricName.FindAllString(e, -1) {
			used[name] = true
			if !have[name] {
				t.Errorf("the dashboard queries %s, which the exporter does not emit: %s", name, e)
			}
		}
	}
	// Every metric is charted, or is here on purpose.
	notCharted := []string{"pgvalve_info", "pgvalve_start_time_seconds", "pgvalve_pool_mode"}
	for name := range have {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "pgvalve_") && !used[name] && !used[base] && !slices.Contains(notCharted, name) {
			t.Errorf("%s is emitted but not on the dashboard", name)
		}
	}
}

var quantileOfBuckets = regexp.MustCompile(`histogram_quantile\([^,]+, sum by \(([^)]*)\) \(rate\(\w+_bucket`)

func TestTheDashboardsClassicQuantilesKeepTheBucketLabel(t *testing.T) {
	d := readDashboard(t)
	n := 0
	for _, e := range d.exprs() {
		for _, m := range quantileOfBuckets.FindAllStringSubmatch(e, -1) {
			n++
			if !slices.Contains(strings.Split(strings.ReplaceAll(m[1], " ", ""), ","), "le") {
				t.Errorf("summed without le, histogram_quantile has nothing to read: %s", e)
			}
		}
	}
	if n != 9 {
		t.Errorf("%d classic quantile queries, want p50, p95 and p99 of wait, query and transaction", n)
	}
}

func TestTheDashboardIsAGrafanaDashboardOverAPrometheusVariable(t *testing.T) {
	d := readDashboard(t)
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want a current one (39)", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "datasource" && v.Query != "prometheus" {
			t.Errorf("the datasource variable offers %v, want prometheus", v.Query)
		}
	}
	if vars["datasource"] != "datasource" || vars["database"] != "query" || vars["user"] != "query" {
		t.Errorf("template variables %v, want datasource, database and user", vars)
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && (len(p.Targets) == 0 || p.Datasource.UID != "${datasource}") {
				t.Errorf("panel %q: %d targets, datasource %q; want queries on ${datasource}", p.Title, len(p.Targets), p.Datasource.UID)
			}
			for _, tg := range p.Targets {
				if tg.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q queries datasource %q", p.Title, tg.Datasource.UID)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}
