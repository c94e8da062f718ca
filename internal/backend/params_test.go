package backend_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// startup expands raw client startup parameters as a session would.
func startup(t *testing.T, raw ...wire.Param) []wire.Param {
	t.Helper()
	params, err := backend.StartupParams(raw)
	if err != nil {
		t.Fatalf("StartupParams(%v): %v", raw, err)
	}
	return params
}

func TestSyncParamsAppliesClientSettingsAsTheServerWouldAtStartup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		params   []wire.Param
		settings map[string]string // current_setting values
		reported map[string]string // ParameterStatus values
	}{
		{
			name:     "a search_path list stays a list of two schemas",
			params:   []wire.Param{{Name: "search_path", Value: "a, b"}},
			settings: map[string]string{"search_path": "a, b"},
		},
		{
			name:     "a search_path from options keeps its escaped space",
			params:   startup(t, wire.Param{Name: "options", Value: `-c search_path=x,\ y`}),
			settings: map[string]string{"search_path": "x, y"},
		},
		{
			name:     "statement_timeout comes from the options parameter",
			params:   startup(t, wire.Param{Name: "options", Value: "-c statement_timeout=1234"}),
			settings: map[string]string{"statement_timeout": "1234ms"},
		},
		{
			name:     "a reported value with a quote and backslashes survives exactly",
			params:   []wire.Param{{Name: "application_name", Value: `it's a \ test \' \\`}},
			settings: map[string]string{"application_name": `it's a \ test \' \\`},
			reported: map[string]string{"application_name": `it's a \ test \' \\`},
		},
		{
			name:     "a custom setting with a quote and backslashes survives exactly",
			params:   []wire.Param{{Name: "pgvalve.test_value", Value: `a'b\c\'d\\`}},
			settings: map[string]string{"pgvalve.test_value": `a'b\c\'d\\`},
		},
		{
			name: "several settings apply together",
			params: startup(t,
				wire.Param{Name: "user", Value: "ignored"},
				wire.Param{Name: "application_name", Value: "several"},
				wire.Param{Name: "DateStyle", Value: "ISO, DMY"},
				wire.Param{Name: "options", Value: "-c work_mem=4MB --lock-timeout=5s"},
			),
			settings: map[string]string{"work_mem": "4MB", "lock_timeout": "5s", "DateStyle": "ISO, DMY"},
			reported: map[string]string{"application_name": "several", "DateStyle": "ISO, DMY"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			if err := c.SyncParams(testutil.Context(t), tc.params); err != nil {
				t.Fatalf("SyncParams(%v): %v", tc.params, err)
			}
			for name, want := range tc.reported {
				if got := c.Param(name); got != want {
					t.Errorf("Param(%q) = %q, want %q", name, got, want)
				}
			}
			for name, want := range tc.settings {
				assertSetting(t, c, name, want)
			}
			if !c.Reusable() || c.TxStatus() != 'I' {
				t.Errorf("after SyncParams: Reusable() = %v, TxStatus() = %q", c.Reusable(), c.TxStatus())
			}
		})
	}
}

func TestSyncParamsReturnsTheServerErrorForABadSettingAndStaysUsable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params []wire.Param
		code   string
	}{
		{"for an unknown setting", []wire.Param{{Name: "no_such_setting", Value: "x"}}, "42704"},
		{"for a bad value", []wire.Param{{Name: "work_mem", Value: "banana"}}, "22023"},
		{"for a setting that cannot change after startup", []wire.Param{{Name: "max_connections", Value: "5"}}, "55P02"},
		{"alongside good settings, which are not applied", []wire.Param{
			{Name: "application_name", Value: "not_applied"},
			{Name: "no_such_setting", Value: "x"},
		}, "42704"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			err := c.SyncParams(testutil.Context(t), tc.params)
			if code := pgCode(err); code != tc.code {
				t.Fatalf("SyncParams(%v) = %v, want SQLSTATE %s", tc.params, err, tc.code)
			}
			if !c.Reusable() || c.TxStatus() != 'I' {
				t.Errorf("after the error: Reusable() = %v, TxStatus() = %q", c.Reusable(), c.TxStatus())
			}
			mustExec(t, c, "select 1")
			assertSetting(t, c, "application_name", "")
		})
	}
}

func TestSyncParamsSkipsValuesTheServerAlreadyReports(t *testing.T) {
	cfg := tcpConfig()
	cfg.Params["application_name"] = "already"
	c := dialWith(t, cfg)
	same := []wire.Param{
		{Name: "application_name", Value: "already"},
		// Setting server_version would fail (55P02): success proves it is skipped.
		{Name: "server_version", Value: c.Param("server_version")},
	}
	if err := c.SyncParams(testutil.Context(t), same); err != nil {
		t.Fatalf("SyncParams with values already reported: %v", err)
	}
	// A broken connection refuses every query, so nil means none was sent.
	c.MarkBroken(reason.RelayFailed, "test: no query may be sent")
	if err := c.SyncParams(testutil.Context(t), same); err != nil {
		t.Errorf("SyncParams sent a query for values already reported: %v", err)
	}
	if err := c.SyncParams(testutil.Context(t), nil); err != nil {
		t.Errorf("SyncParams(nil) sent a query: %v", err)
	}
	if err := c.SyncParams(testutil.Context(t), []wire.Param{{Name: "application_name", Value: "different"}}); err == nil {
		t.Error("SyncParams of a changed value on a broken connection succeeded")
	}
}

func TestSyncParamsAppliesTheLastOfRepeatedSettings(t *testing.T) {
	cfg := tcpConfig()
	cfg.Params["application_name"] = "last"
	c := dialWith(t, cfg)
	// A client sending options=-c application_name=first and application_name=last
	// becomes this list; the server already reports "last" from an earlier sync.
	want := []wire.Param{{Name: "application_name", Value: "first"}, {Name: "application_name", Value: "last"}}
	if err := c.SyncParams(testutil.Context(t), want); err != nil {
		t.Fatal(err)
	}
	if got := c.Param("application_name"); got != "last" {
		t.Fatalf("SyncParams(%v) left application_name = %q, want %q", want, got, "last")
	}
}

func TestStartupParamsLetExplicitParametersOverrideOptionsAsThePostmasterDoes(t *testing.T) {
	// What a direct connection gets when options and an explicit parameter
	// set the same name: PostgreSQL applies options first, whatever the order.
	pcfg, err := pgx.ParseConfig(cluster.URL(cluster.User, cluster.Password, cluster.Database))
	if err != nil {
		t.Fatal(err)
	}
	pcfg.RuntimeParams["options"] = "-c application_name=from_options"
	pcfg.RuntimeParams["application_name"] = "explicit"
	direct, err := pgx.ConnectConfig(testutil.Context(t), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	var reference string
	err = direct.QueryRow(testutil.Context(t), "select current_setting('application_name')").Scan(&reference)
	direct.Close(testutil.Context(t))
	if err != nil {
		t.Fatal(err)
	}

	options := wire.Param{Name: "options", Value: "-c application_name=from_options"}
	explicit := wire.Param{Name: "application_name", Value: "explicit"}
	for _, tc := range []struct {
		name string
		raw  []wire.Param
	}{
		{"when options come first", []wire.Param{options, explicit}},
		{"when options come last", []wire.Param{explicit, options}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			if err := c.SyncParams(testutil.Context(t), startup(t, tc.raw...)); err != nil {
				t.Fatal(err)
			}
			if got := c.Param("application_name"); got != reference {
				t.Fatalf("startup parameters %v give application_name = %q through pgvalve but %q "+
					"connecting directly", tc.raw, got, reference)
			}
		})
	}
}

// SyncFor trusts a matching key and sends nothing; a server report
// (here another client's SET application_name) voids the key, and the next
// SyncFor brings the server back.
func TestSyncForTrustsItsKeyUntilTheServerReportsAChange(t *testing.T) {
	c := dial(t)
	ctx := testutil.Context(t)
	want := []wire.Param{{Name: "application_name", Value: "keyed"}, {Name: "work_mem", Value: "3MB"}}
	key := backend.ParamsKey(want)
	if err := c.SyncFor(ctx, 1, key, want); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "SET application_name = 'changed behind the key'"); err != nil {
		t.Fatal(err)
	}
	if err := c.SyncFor(ctx, 1, key, want); err != nil {
		t.Fatal(err)
	}
	assertSetting(t, c, "application_name", "keyed")
	assertSetting(t, c, "work_mem", "3MB")
	// A broken connection refuses every query, so nil means none was sent.
	c.MarkBroken(reason.RelayFailed, "test: no query may be sent")
	if err := c.SyncFor(ctx, 1, key, want); err != nil {
		t.Errorf("SyncFor with the key the server matches sent a query: %v", err)
	}
	other := []wire.Param{{Name: "application_name", Value: "keyed"}, {Name: "work_mem", Value: "5MB"}}
	if err := c.SyncFor(ctx, 1, backend.ParamsKey(other), other); err == nil {
		t.Error("SyncFor with another key on a broken connection succeeded")
	}
}

func TestParamsKeyTellsListsApartByContent(t *testing.T) {
	a := []wire.Param{{Name: "a", Value: "bc"}}
	for _, tc := range []struct {
		name  string
		other []wire.Param
		same  bool
	}{
		{"the same list", []wire.Param{{Name: "a", Value: "bc"}}, true},
		{"a value split differently", []wire.Param{{Name: "ab", Value: "c"}}, false},
		{"one more parameter", []wire.Param{{Name: "a", Value: "bc"}, {Name: "d", Value: ""}}, false},
		{"nothing", nil, false},
	} {
		if got := backend.ParamsKey(a) == backend.ParamsKey(tc.other); got != tc.same {
			t.Errorf("%s: keys equal = %v, want %v", tc.name, got, tc.same)
		}
	}
}
