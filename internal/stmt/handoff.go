package stmt

// Saved is one of a client's prepared statements as an online restart
// carries it to a new pgvalve process (internal/takeover): what the client
// would find on a server of its own, without what any server holds.
type Saved struct {
	Name       string `json:"name,omitempty"`
	Unnamed    bool   `json:"unnamed,omitempty"`
	Query      string `json:"query"`
	ParamTypes []byte `json:"param_types,omitempty"`
	Shape      uint64 `json:"shape,omitempty"`
	Parsed     bool   `json:"parsed,omitempty"`
	Desc       []byte `json:"desc,omitempty"`
	Rows       bool   `json:"rows,omitempty"`
}

// Save lists the client's statements for a new process. ok is false when
// the tracker awaits answers, or holds a statement made by SQL PREPARE or
// that names another (EXECUTE, DEALLOCATE): those are links between
// statements Saved does not carry, so such a client is not handed over.
func (t *Tracker) Save() (saved []Saved, ok bool) {
	if len(t.q) != 0 || len(t.portals) != 0 || t.skipping || t.copyIn {
		return nil, false
	}
	add := func(name string, unnamed bool, st *Statement) bool {
		if !st.plain() {
			return false
		}
		saved = append(saved, Saved{Name: name, Unnamed: unnamed, Query: st.Query, ParamTypes: st.ParamTypes,
			Shape: st.shape, Parsed: st.parsed, Desc: st.desc, Rows: st.rows})
		return true
	}
	for name, st := range t.reg.m {
		if !add(name, false, st) {
			return nil, false
		}
	}
	if u := t.reg.unnamed; u != nil && !add("", true, u) {
		return nil, false
	}
	return saved, true
}

// plain says the statement came from a Parse of a text that prepares,
// executes or drops no other statement.
func (st *Statement) plain() bool {
	return st.act == action{} && st.sql == "" && !st.typed && st.ref == "" && st.uses == nil && st.rewritten == ""
}

// Restore makes a tracker over the statements Save listed. Their server
// names come from their texts, as when the client parsed them, so servers
// that hold them already (of another pgvalve, never) are not needed: each
// is prepared on a server at its first use there.
func Restore(saved []Saved) *Tracker {
	reg := NewRegistry()
	for _, s := range saved {
		st := NewStatement(Parse{Query: s.Query, ParamTypes: s.ParamTypes})
		st.shape, st.parsed, st.desc, st.rows = s.Shape, s.Parsed, s.Desc, s.Rows
		if s.Unnamed {
			reg.unnamed = st
		} else {
			reg.Add(s.Name, st)
		}
	}
	return NewTracker(reg)
}
