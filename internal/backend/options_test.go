package backend_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/wire"
)

type params = []wire.Param

func TestParseOptionsReadsSettingsTheWayThePostmasterDoes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     params
	}{
		{"an empty string has no settings", "", nil},
		{"only whitespace has no settings", " \t\n ", nil},
		{"-c and a separate name=value", "-c a=b", params{param("a", "b")}},
		{"-c joined to name=value", "-ca=b", params{param("a", "b")}},
		{"a double-dash long option", "--a-b=c", params{param("a_b", "c")}},
		{"dashes become underscores only in the name", "-c lock-timeout=a-b", params{param("lock_timeout", "a-b")}},
		{"an escaped space stays in the value", `-c search_path=a,\ b`, params{param("search_path", "a, b")}},
		{"an escaped backslash stays in the value", `-c a=x\\y`, params{param("a", `x\y`)}},
		{"an equals sign in the value is kept", "-c a=b=c", params{param("a", "b=c")}},
		{"an empty value is allowed", "-c a=", params{param("a", "")}},
		{"a trailing lone backslash is dropped", `-c a=b\`, params{param("a", "b")}},
		{"multiple settings keep their order", "-c a=1 -cb=2\t--c-d=3\n-c a=4",
			params{param("a", "1"), param("b", "2"), param("c_d", "3"), param("a", "4")}},
		{"extra whitespace between switches is ignored", "  -c   a=1   ", params{param("a", "1")}},
		{"non-ASCII values pass through", "-c application_name=пгвальв", params{param("application_name", "пгвальв")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := backend.ParseOptions(tc.in)
			if err != nil {
				t.Fatalf("ParseOptions(%q): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ParseOptions(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseOptionsRefusesWhatIsNotASetting(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"another postmaster switch", "-x"},
		{"a switch with an argument", "-B 10"},
		{"-c at the end without a value", "-c"},
		{"-c with a word lacking =", "-c novalue"},
		{"-c with an empty name", "-c =v"},
		{"a long option lacking =", "--novalue"},
		{"a bare double dash", "--"},
		{"a bare word", "plain"},
		{"a bad switch after good ones", "-c a=b -x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := backend.ParseOptions(tc.in)
			if err == nil {
				t.Errorf("ParseOptions(%q) = %v, want an error", tc.in, got)
			}
		})
	}
}

func TestStartupParamsDropsConnectionChoicesAndExpandsOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   params
		want params
	}{
		{"no parameters give none", nil, nil},
		{"user, database and replication are dropped",
			params{param("user", "u"), param("database", "d"), param("replication", "false")}, nil},
		{"other parameters are kept in order",
			params{param("user", "u"), param("application_name", "app"), param("database", "d"), param("DateStyle", "ISO")},
			params{param("application_name", "app"), param("DateStyle", "ISO")}},
		{"options are expanded ahead of the explicit parameters",
			params{param("application_name", "app"), param("options", `-c search_path=a,\ b --work-mem=4MB`), param("TimeZone", "UTC")},
			params{param("search_path", "a, b"), param("work_mem", "4MB"), param("application_name", "app"), param("TimeZone", "UTC")}},
		{"an explicit parameter overrides the same one in options",
			params{param("application_name", "explicit"), param("options", "-c application_name=opt -c work_mem=1MB")},
			params{param("work_mem", "1MB"), param("application_name", "explicit")}},
		{"empty options add nothing", params{param("options", "")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := backend.StartupParams(tc.in)
			if err != nil {
				t.Fatalf("StartupParams(%v): %v", tc.in, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("StartupParams(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestStartupParamsReturnsTheOptionsError(t *testing.T) {
	in := params{param("user", "u"), param("options", "-c a=b -B 10")}
	if got, err := backend.StartupParams(in); err == nil {
		t.Errorf("StartupParams(%v) = %v, want an error", in, got)
	}
}

func TestParamCacheLoadIsNilUntilSomethingIsStored(t *testing.T) {
	var c backend.ParamCache
	if got := c.Load(); got != nil {
		t.Errorf("Load() on an empty cache = %v, want nil", got)
	}
}

// Load shares the stored map read-only with every caller (each idle
// client keeps it), so what it returns equals what was stored.
func TestParamCacheLoadReturnsWhatWasStored(t *testing.T) {
	var c backend.ParamCache
	stored := map[string]string{"server_version": "15.0", "TimeZone": "UTC"}
	c.Store(maps.Clone(stored))
	if got := c.Load(); !maps.Equal(got, stored) {
		t.Fatalf("Load() = %v, want %v", got, stored)
	}

	newer := map[string]string{"server_version": "16.0"}
	c.Store(maps.Clone(newer))
	if got := c.Load(); !maps.Equal(got, newer) {
		t.Errorf("after a second Store, Load() = %v, want %v", got, newer)
	}
}

func TestParamCacheIsUnaffectedByLaterChangesToTheStoredMap(t *testing.T) {
	var c backend.ParamCache
	stored := map[string]string{"server_version": "15.0"}
	c.Store(stored)
	stored["server_version"] = "mutated"
	if got := c.Load()["server_version"]; got != "15.0" {
		t.Fatalf("Store kept the caller's map: a later change to it shows in Load (server_version = %q)", got)
	}
}

func TestParamCacheServesConcurrentStoresAndLoads(t *testing.T) {
	var c backend.ParamCache
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			c.Store(map[string]string{"server_version": "15.0"})
		}
	}()
	for range 1000 {
		if got := c.Load(); got != nil && got["server_version"] != "15.0" {
			t.Fatalf("Load() = %v", got)
		}
	}
	<-done
}

func param(name, value string) wire.Param { return wire.Param{Name: name, Value: value} }
