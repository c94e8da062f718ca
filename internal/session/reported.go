package session

// reportedParams is what a client has been told each reported parameter
// is: the greeting its pool shares read-only among all its clients, under
// this client's own changes, so an idle client that changed nothing costs
// no copy of the greeting.
type reportedParams struct {
	base map[string]string // shared: never written
	own  map[string]string // this client's changes; nil until the first
}

func (p *reportedParams) get(name string) (string, bool) {
	if v, ok := p.own[name]; ok {
		return v, true
	}
	v, ok := p.base[name]
	return v, ok
}

func (p *reportedParams) set(name, val string) {
	if cur, ok := p.get(name); ok && cur == val {
		return
	}
	if p.own == nil {
		p.own = make(map[string]string)
	}
	p.own[name] = val
}

// each calls fn for every parameter once, with its current value.
func (p *reportedParams) each(fn func(name, val string)) {
	for k, v := range p.base {
		if o, ok := p.own[k]; ok {
			v = o
		}
		fn(k, v)
	}
	for k, v := range p.own {
		if _, ok := p.base[k]; !ok {
			fn(k, v)
		}
	}
}
