package observe

// Meter is what the relay measures for one pool: every server handed out
// (Wait, zero when none was waited for), every request answered (Query)
// and every transaction ended (Xact, an implicit one included). Counts and
// sums since start come from the histograms themselves, so there is one
// place to add to on the hot path.
type Meter struct {
	Latency [NumKinds]Hist
}
