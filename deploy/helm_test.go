package deploy

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"

	"github.com/pgvalve/pgvalve/internal/config"
)

// renderChart renders deploy/helm/pgvalve as `helm template test` does,
// with overrides on top of values.yaml: Go templates with sprig's
// functions and Helm's include and toYaml (no helm binary or registry is
// reachable from the tests). It returns each manifest by kind (the first
// of a kind, in file order) and by kind/name.
func renderChart(t *testing.T, overrides map[string]any) map[string]map[string]any {
	t.Helper()
	dir := filepath.Join("helm", "pgvalve")
	var chart, values map[string]any
	readYAML(t, filepath.Join(dir, "Chart.yaml"), &chart)
	readYAML(t, filepath.Join(dir, "values.yaml"), &values)
	maps.Copy(values, overrides)
	tpl := template.New("chart").Funcs(sprig.TxtFuncMap())
	tpl.Funcs(template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b bytes.Buffer
			err := tpl.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"toYaml": func(v any) string {
			b, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSuffix(string(b), "\n")
		},
	})
	files, err := filepath.Glob(filepath.Join(dir, "templates", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no templates: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tpl.New(filepath.Base(f)).Parse(string(b)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	data := map[string]any{
		"Values":  values,
		"Release": map[string]any{"Name": "test", "Namespace": "default"},
		"Chart":   map[string]any{"Name": chart["name"], "AppVersion": chart["appVersion"], "Version": chart["version"]},
	}
	out := map[string]map[string]any{}
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") {
			continue
		}
		var b bytes.Buffer
		if err := tpl.ExecuteTemplate(&b, name, data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.TrimSpace(b.String()) == "" {
			continue // switched off
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatalf("%s renders invalid YAML: %v\n%s", name, err, b.String())
		}
		kind := doc["kind"].(string)
		if out[kind] == nil {
			out[kind] = doc
		}
		out[kind+"/"+get(t, doc, "metadata", "name").(string)] = doc
	}
	return out
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// get walks a manifest: path elements are map keys or, for lists, the
// first element.
func get(t *testing.T, doc any, path ...string) any {
	t.Helper()
	for _, p := range path {
		if l, ok := doc.([]any); ok {
			doc = l[0]
		}
		m, ok := doc.(map[string]any)
		if !ok {
			t.Fatalf("no %s in %v", p, doc)
		}
		doc = m[p]
	}
	return doc
}

func TestTheChartRendersAStatefulSetReadyForRollingDrains(t *testing.T) {
	m := renderChart(t, nil)
	for _, kind := range []string{"StatefulSet", "Service/test-pgvalve", "Service/test-pgvalve-peers", "ConfigMap", "Secret", "PodDisruptionBudget"} {
		if m[kind] == nil {
			t.Errorf("no %s rendered", kind)
		}
	}
	if m["ServiceMonitor"] != nil {
		t.Error("a ServiceMonitor rendered while serviceMonitor.enabled is false")
	}
	c := []string{"spec", "template", "spec", "containers"}
	d := m["StatefulSet"]
	for _, check := range []struct {
		path []string
		want any
	}{
		{[]string{"spec", "replicas"}, float64(2)},
		{append(c, "readinessProbe", "httpGet", "path"), "/healthz"},
		{append(c, "readinessProbe", "httpGet", "port"), "metrics"},
		{append(c, "lifecycle", "preStop", "sleep", "seconds"), float64(5)},
		{append(c, "securityContext", "readOnlyRootFilesystem"), true},
		{[]string{"spec", "template", "spec", "securityContext", "runAsNonRoot"}, true},
		{[]string{"spec", "template", "spec", "terminationGracePeriodSeconds"}, float64(45)},
	} {
		if got := get(t, d, check.path...); got != check.want {
			t.Errorf("StatefulSet %s = %v; want %v", strings.Join(check.path, "."), got, check.want)
		}
	}
	if got := get(t, m["PodDisruptionBudget"], "spec", "maxUnavailable"); got != float64(1) {
		t.Errorf("PodDisruptionBudget maxUnavailable = %v; want 1", got)
	}
	if m := renderChart(t, map[string]any{"serviceMonitor": map[string]any{"enabled": true, "interval": "15s"}}); get(t, m["ServiceMonitor"], "spec", "endpoints", "path") != "/metrics" {
		t.Error("the ServiceMonitor does not scrape /metrics")
	}
}

// The chart's configuration is one pgvalve reads, and the instances'
// max_db_connections add up to no more than the server budget, whatever
// the number of instances.
func TestTheChartsInstancesShareTheServerBudget(t *testing.T) {
	for replicas := 1; replicas <= 7; replicas++ {
		m := renderChart(t, map[string]any{"replicaCount": replicas, "serverBudget": 80})
		toml := get(t, m["ConfigMap"], "data", "pgvalve.toml").(string)
		cfg, err := config.Parse("pgvalve.toml", []byte(toml))
		if err != nil {
			t.Fatalf("%d replicas: the rendered configuration does not load: %v\n%s", replicas, err, toml)
		}
		if cfg.MaxDBConnections < 1 || cfg.MaxDBConnections*replicas > 80 || cfg.MaxDBConnections*replicas <= 80-replicas {
			t.Errorf("%d replicas: max_db_connections %d each, %d in all; want the most that fits in 80",
				replicas, cfg.MaxDBConnections, cfg.MaxDBConnections*replicas)
		}
		if cfg.MetricsListen != "0.0.0.0:9187" || cfg.Listen != "0.0.0.0:6432" {
			t.Errorf("listen %q, metrics_listen %q; want the pod's ports", cfg.Listen, cfg.MetricsListen)
		}
	}
}

func TestAnExistingSecretReplacesTheChartsOwn(t *testing.T) {
	m := renderChart(t, map[string]any{"existingSecret": "prod-userlist"})
	if m["Secret"] != nil {
		t.Error("the chart rendered its own Secret beside the existing one")
	}
	vols := get(t, m["StatefulSet"], "spec", "template", "spec", "volumes").([]any)
	found := false
	for _, v := range vols {
		if s, ok := v.(map[string]any)["secret"].(map[string]any); ok && s["secretName"] == "prod-userlist" {
			found = true
		}
	}
	if !found {
		t.Errorf("no volume of the existing Secret in %v", vols)
	}
}

// Each pod is an instance of a fleet: its ordinal, from 1, is its peer_id
// (given by flag from the pod's index label), and the configuration every
// pod shares lists every pod at its DNS name in the headless Service, so a
// cancel request reaching any pod is forwarded to the one that issued its
// key.
func TestTheChartsPodsArePeersByTheirOrdinals(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		m := renderChart(t, map[string]any{"replicaCount": replicas})
		sts := m["StatefulSet"]
		if get(t, sts, "spec", "ordinals", "start") != float64(1) || get(t, sts, "spec", "serviceName") != "test-pgvalve-peers" {
			t.Fatalf("ordinals %v, serviceName %v; want ordinals from 1 and the peers Service",
				get(t, sts, "spec", "ordinals"), get(t, sts, "spec", "serviceName"))
		}
		c := []string{"spec", "template", "spec", "containers"}
		args := get(t, sts, append(c, "args")...).([]any)
		env := get(t, sts, append(c, "env")...).([]any)[0].(map[string]any)
		if !slices.Contains(args, "--peer-id") || args[len(args)-1] != "$(PGVALVE_PEER_ID)" || env["name"] != "PGVALVE_PEER_ID" ||
			get(t, env, "valueFrom", "fieldRef", "fieldPath") != "metadata.labels['apps.kubernetes.io/pod-index']" {
			t.Fatalf("args %v, env %v; want --peer-id from the pod's index label", args, env)
		}
		peers := m["Service/test-pgvalve-peers"]
		if get(t, peers, "spec", "clusterIP") != "None" || get(t, peers, "spec", "publishNotReadyAddresses") != true {
			t.Fatalf("peers Service %v; want headless, naming draining pods too", get(t, peers, "spec"))
		}

		toml := get(t, m["ConfigMap"], "data", "pgvalve.toml").(string)
		cfg, err := config.Parse("pgvalve.toml", []byte(toml))
		if err != nil {
			t.Fatalf("%d replicas: the rendered configuration does not load: %v\n%s", replicas, err, toml)
		}
		if len(cfg.Peers) != replicas {
			t.Fatalf("%d replicas, %d peers: %v", replicas, len(cfg.Peers), cfg.Peers)
		}
		for id := 1; id <= replicas; id++ {
			want := fmt.Sprintf("test-pgvalve-%d.test-pgvalve-peers:6432", id)
			if got := cfg.Peers[id].String(); got != want {
				t.Errorf("peer %d at %s; want pod %d's name in the peers Service, %s", id, got, id, want)
			}
		}
		if cfg.PeerID != 0 {
			t.Errorf("the shared file sets peer_id %d; each pod's comes from its ordinal", cfg.PeerID)
		}
	}
}
