package metrics

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pgvalve/pgvalve/internal/observe"
)

var latencyDescs = [observe.NumKinds]*prometheus.Desc{
	observe.Wait: poolDesc("pgvalve_wait_duration_seconds",
		"How long clients waited for a server (acquires that did not wait are in the zero bucket)."),
	observe.Query: poolDesc("pgvalve_query_duration_seconds",
		"How long requests took, from their first byte to their ReadyForQuery."),
	observe.Xact: poolDesc("pgvalve_transaction_duration_seconds",
		"How long transactions took."),
}

// Classic buckets are powers of two seconds, 2^-14 (61µs) to 2^7 (128s):
// 2^n s is exactly the upper bound of schema-3 bucket 8n, so each classic
// bucket is an exact sum of native ones and the two views of one
// histogram never disagree.
const minClassicExp, maxClassicExp = -14, 7

// latency is one pool's histogram of one kind as a prometheus.Metric
// carrying both classic buckets and native (schema 3) spans, so a scraper
// reads whichever it supports. client_golang's const native histogram
// carries no classic buckets, hence this type.
type latency struct {
	desc    *prometheus.Desc
	labels  []*dto.LabelPair
	counts  *observe.Native
	created time.Time
}

func newLatency(d *prometheus.Desc, labelValues []string, n *observe.Native, created time.Time) *latency {
	return &latency{d, prometheus.MakeLabelPairs(d, labelValues), n, created}
}

// Desc is the histogram's description.
func (l *latency) Desc() *prometheus.Desc { return l.desc }

// Write fills m with the histogram, classic and native.
func (l *latency) Write(m *dto.Metric) error {
	n := l.counts
	spans, deltas := spans(n.Buckets[:])
	m.Label = l.labels
	m.Histogram = &dto.Histogram{
		SampleCount:      new(n.Count),
		SampleSum:        new(n.Sum.Seconds()),
		Bucket:           classic(n),
		CreatedTimestamp: timestamppb.New(l.created),
		Schema:           new(int32(observe.Schema)),
		ZeroThreshold:    new(observe.ZeroThreshold),
		ZeroCount:        new(n.ZeroCount),
		PositiveSpan:     spans,
		PositiveDelta:    deltas,
	}
	return nil
}

// classic is n's cumulative counts at each power of two seconds.
func classic(n *observe.Native) []*dto.Bucket {
	bs := make([]*dto.Bucket, 0, maxClassicExp-minClassicExp+1)
	cum := n.ZeroCount
	next := observe.MinKey // the next native key to add to cum
	for e := minClassicExp; e <= maxClassicExp; e++ {
		for ; next <= 8*e; next++ {
			cum += n.Buckets[next-observe.MinKey]
		}
		bs = append(bs, &dto.Bucket{
			CumulativeCount: new(cum),
			UpperBound:      new(math.Exp2(float64(e))),
		})
	}
	return bs
}

// spans encodes native bucket counts (counts[i] is key MinKey+i) as
// Prometheus spans and deltas: each span starts at an offset from the end
// of the last (from key 0 for the first), and each count is a delta from
// the one before. As in client_golang, gaps of up to two empty buckets
// stay inside a span, which encodes smaller than a new span.
func spans(counts []uint64) ([]*dto.BucketSpan, []int64) {
	var (
		ss     []*dto.BucketSpan
		deltas []int64
		prev   int64
		next   = 0 // the key after the last one encoded
	)
	for i, c := range counts {
		if c == 0 {
			continue
		}
		key := observe.MinKey + i
		gap := int32(key - next)
		if len(ss) == 0 || gap > 2 {
			ss = append(ss, &dto.BucketSpan{Offset: new(gap), Length: new(uint32(0))})
		} else {
			for range gap { // a small gap: empty buckets inside the span
				*ss[len(ss)-1].Length++
				deltas = append(deltas, -prev)
				prev = 0
			}
		}
		*ss[len(ss)-1].Length++
		deltas = append(deltas, int64(c)-prev)
		prev = int64(c)
		next = key + 1
	}
	return ss, deltas
}
