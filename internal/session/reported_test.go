package session

import (
	"maps"
	"testing"
)

// A client's changes to what it was told never reach the greeting its
// pool shares, and the client sees them over the greeting.
func TestReportedParamsNeverWriteTheSharedGreeting(t *testing.T) {
	greeting := map[string]string{"TimeZone": "UTC", "application_name": ""}
	shared := maps.Clone(greeting)
	p := reportedParams{base: shared}
	p.set("TimeZone", "UTC") // unchanged: no copy made
	if p.own != nil {
		t.Fatal("setting an unchanged value made the client its own copy")
	}
	p.set("application_name", "psql")
	p.set("search_path", "app")
	if !maps.Equal(shared, greeting) {
		t.Fatalf("the shared greeting was written: %v", shared)
	}
	seen := map[string]string{}
	p.each(func(k, v string) { seen[k] = v })
	want := map[string]string{"TimeZone": "UTC", "application_name": "psql", "search_path": "app"}
	if !maps.Equal(seen, want) {
		t.Fatalf("the client sees %v, want %v", seen, want)
	}
	if v, _ := p.get("application_name"); v != "psql" {
		t.Fatalf("get(application_name) = %q, want psql", v)
	}
}
