package backend

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pgvalve/pgvalve/internal/wire"
)

// SyncParams is SyncFor with no owner and no key: any SET a client ran
// on the server is reset first.
func (c *Conn) SyncParams(ctx context.Context, want []wire.Param) error {
	return c.SyncFor(ctx, 0, "", want)
}

// SyncFor makes the server session's settings what client owner wants
// (its startup parameters and the reported parameters as it knows them),
// in one round trip, and only where they differ:
//
//   - a reported parameter is compared with the server's report;
//   - any other parameter with what pgvalve set on this server before;
//   - a parameter pgvalve set for an earlier client that this one does not
//     want is RESET;
//   - after another client ran SET, RESET or DISCARD here (MarkDirty),
//     resetAll comes first, since pgvalve cannot know what it changed.
//
// It uses set_config rather than SET so values are parsed the way
// PostgreSQL parses startup parameters (a search_path list stays a list).
// A bad name or value comes back as the server's error, which the client
// would have seen connecting directly.
//
// key, when not empty, is ParamsKey(want): a server last brought in line
// with the same key, with no server report or reset since, is known to
// match without looking at want. That is every transaction of a pool
// whose clients connect alike, as application pools do.
func (c *Conn) SyncFor(ctx context.Context, owner uint64, key string, want []wire.Param) error {
	return c.SyncWith(ctx, owner, key, want, Sets{})
}

// resetAll undoes every session setting a client may have made. RESET ALL
// leaves role and session_authorization as they are (PostgreSQL marks them
// GUC_NO_RESET_ALL), so a client's SET ROLE would reach the next client:
// they are reset first, as DISCARD ALL does.
const resetAll = "RESET SESSION AUTHORIZATION; RESET ROLE; RESET ALL"

// SyncWith is SyncFor for a client that also made session settings of
// its own (sets): they go after want, so they win where both name a
// setting. A server that holds another set of the owner's own settings
// (it SET something here, then changed its mind on another server) is
// RESET ALL first, as one another client changed.
func (c *Conn) SyncWith(ctx context.Context, owner uint64, key string, want []wire.Param, sets Sets) error {
	setsHere := c.sets == sets.Key
	clean := (c.dirty == 0 || c.dirty == owner) && (setsHere || c.sets == "")
	if key != "" && key == c.synced && clean && setsHere {
		return nil
	}
	if setsHere && c.inSync(owner, want) {
		c.synced = key
		return nil // the common case before keys, checked without allocating
	}
	c.synced = ""
	want = lastOfEach(want)
	var stmts, setCalls []string
	applied := c.applied
	if !clean {
		stmts = append(stmts, resetAll)
		applied = nil
	}
	// After a RESET ALL the server reports what it did when it was new.
	current := c.params
	if !clean {
		current = c.initial
	}
	wanted := make(map[string]bool, len(want))
	for _, p := range want {
		wanted[p.Name] = true
		if v, reported := current[p.Name]; reported && v == p.Value {
			continue
		}
		if v, ok := applied[p.Name]; ok && v == p.Value {
			continue
		}
		setCalls = append(setCalls, fmt.Sprintf("pg_catalog.set_config(%s, %s, false)", literal(p.Name), literal(p.Value)))
	}
	if len(setCalls) > 0 {
		stmts = append(stmts, "SELECT "+strings.Join(setCalls, ", "))
	}
	for name := range applied {
		if !wanted[name] {
			stmts = append(stmts, "RESET "+ident(name))
		}
	}
	// Anything applied from want may have overridden one of the client's
	// own settings: they all go again after it.
	if len(sets.SQL) > 0 && (len(stmts) > 0 || !setsHere) {
		stmts = append(stmts, sets.SQL...)
	}
	if len(stmts) == 0 {
		return nil
	}
	if err := c.Exec(ctx, strings.Join(stmts, "; ")); err != nil {
		c.sets = StaleSets // part of it may have run
		return err
	}
	if c.dirty != owner || !clean {
		c.dirty = 0
	}
	c.sets = ""
	if len(sets.SQL) > 0 {
		c.dirty, c.sets = owner, sets.Key
	}
	c.applied = make(map[string]string, len(want))
	for _, p := range want {
		if _, reported := c.params[p.Name]; !reported {
			c.applied[p.Name] = p.Value
		}
	}
	c.synced = key
	return nil
}

// ParamsKey identifies a list of parameters by content, for SyncFor.
func ParamsKey(ps []wire.Param) string {
	var b strings.Builder
	n := 0
	for _, p := range ps {
		n += len(p.Name) + len(p.Value) + 2
	}
	b.Grow(n) // one allocation, not one per growth
	for _, p := range ps {
		b.WriteString(p.Name)
		b.WriteByte(0)
		b.WriteString(p.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// inSync reports whether the server already has exactly want for owner:
// no other client changed its settings, every wanted value is what the
// server reports or what pgvalve applied, and nothing applied is unwanted.
// A name wanted twice with different values fails it, leaving the full
// path to sort out which one wins.
func (c *Conn) inSync(owner uint64, want []wire.Param) bool {
	if c.dirty != 0 && c.dirty != owner {
		return false
	}
	for _, p := range want {
		if v, reported := c.params[p.Name]; reported && v == p.Value {
			continue
		}
		if v, ok := c.applied[p.Name]; !ok || v != p.Value {
			return false
		}
	}
	for name := range c.applied {
		if !slices.ContainsFunc(want, func(p wire.Param) bool { return p.Name == name }) {
			return false
		}
	}
	return true
}

// MarkDirty records that client owner changed the session's settings
// itself (SET, RESET, DISCARD): the next other client gets RESET ALL.
func (c *Conn) MarkDirty(owner uint64) {
	c.dirty = owner
	if owner == 0 {
		c.dirty = ^uint64(0) // an owner nobody has
	}
}

// ForgetApplied records that the server's settings went back to their
// defaults (a reset query ran).
func (c *Conn) ForgetApplied() {
	c.applied = nil
	c.dirty = 0
	c.sets = ""
	c.synced = ""
}

// Sets are a client's own session settings (SET, set_config) as the SQL
// statements that make them, in the order they run, and Key, which
// identifies them by content ("" when there are none).
type Sets struct {
	SQL []string
	Key string
}

// StaleSets is a Sets key no client has: a server noted with it holds
// settings of its owner's that pgvalve cannot name.
const StaleSets = "\x00stale"

// NoteSets records that client owner's own settings on the server are
// now the Sets with key (StaleSets: not known). Like MarkDirty, it makes
// the next other client start with RESET ALL.
func (c *Conn) NoteSets(owner uint64, key string) {
	c.MarkDirty(owner)
	c.sets = key
	c.synced = ""
}

// ident quotes a parameter name as an SQL identifier.
func ident(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// lastOfEach keeps only the last setting of each name, where it stood: a
// later setting of a name overrides an earlier one, as at startup.
func lastOfEach(params []wire.Param) []wire.Param {
	last := make(map[string]int, len(params))
	for i, p := range params {
		last[p.Name] = i
	}
	out := make([]wire.Param, 0, len(last))
	for i, p := range params {
		if last[p.Name] == i {
			out = append(out, p)
		}
	}
	return out
}

// literal quotes s as an escape-string constant, which means the same
// whatever standard_conforming_strings is set to.
func literal(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// StartupParams turns a client's startup parameters into the settings to
// apply on a server, in the order that gives PostgreSQL's precedence: the
// options parameter's -c settings first, then the explicit parameters, which
// override them wherever they stood in the packet. The parameters that pick
// the connection (user, database, replication) are dropped.
func StartupParams(params []wire.Param) ([]wire.Param, error) {
	var opts, explicit []wire.Param
	for _, p := range params {
		switch p.Name {
		case "user", "database", "replication":
			continue
		case "options":
			o, err := ParseOptions(p.Value)
			if err != nil {
				return nil, err
			}
			opts = append(opts, o...)
		default:
			explicit = append(explicit, p)
		}
	}
	return lastOfEach(append(opts, explicit...)), nil
}

// ParseOptions reads the options startup parameter: whitespace-separated
// switches where a backslash keeps the next character (so "\ " is a space
// inside a value). Only -c name=value and --name=value set parameters;
// other postmaster switches are refused, as PgBouncer does.
func ParseOptions(s string) ([]wire.Param, error) {
	words := splitOptions(s)
	var out []wire.Param
	for i := 0; i < len(words); i++ {
		w := words[i]
		var setting string
		switch {
		case w == "-c":
			if i+1 >= len(words) {
				return nil, fmt.Errorf("options: -c needs name=value")
			}
			i++
			setting = words[i]
		case strings.HasPrefix(w, "-c"):
			setting = w[2:]
		case strings.HasPrefix(w, "--"):
			setting = w[2:]
		default:
			return nil, fmt.Errorf("options: unsupported switch %q (only -c name=value)", w)
		}
		name, value, ok := strings.Cut(setting, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("options: %q is not name=value", setting)
		}
		// PostgreSQL treats - and _ alike in option names given this way.
		out = append(out, wire.Param{Name: strings.ReplaceAll(name, "-", "_"), Value: value})
	}
	return out, nil
}

func splitOptions(s string) []string {
	var words []string
	var cur strings.Builder
	inWord, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped, inWord = true, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// ParamCache remembers the parameters a freshly opened server reports, so
// a client can be greeted without waiting for a server of its own (as
// PgBouncer does): the server is leased only when the client sends work.
type ParamCache struct {
	p atomic.Pointer[map[string]string]
	// stored, made by the first Stored call, is closed by the first Store.
	mu     sync.Mutex
	stored chan struct{}
}

// Store records a copy of a fresh server's parameters.
func (c *ParamCache) Store(params map[string]string) {
	cp := maps.Clone(params)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.p.Swap(&cp) == nil && c.stored != nil {
		close(c.stored)
	}
}

// Stored is closed once parameters are recorded.
func (c *ParamCache) Stored() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stored == nil {
		c.stored = make(chan struct{})
		if c.p.Load() != nil {
			close(c.stored)
		}
	}
	return c.stored
}

// Load returns the recorded parameters, or nil if none yet. The map is
// shared by every caller (a pool's clients keep it as their greeting, and
// a copy each would be a few hundred bytes per idle client): never write
// it.
func (c *ParamCache) Load() map[string]string {
	p := c.p.Load()
	if p == nil {
		return nil
	}
	return *p
}
