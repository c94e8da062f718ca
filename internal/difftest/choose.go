package difftest

import "math/rand/v2"

// Chooser makes the generator's choices. Two kinds exist: a seeded
// pseudo-random one for the fixed-seed runs, and one reading fuzz input.
type Chooser interface {
	// IntN returns a number in [0, n); n > 0.
	IntN(n int) int
}

// NewRand is a Chooser for conversation index of a run with seed: the same
// pair always makes the same conversation.
func NewRand(seed uint64, index int) Chooser {
	return rand.New(rand.NewPCG(seed, uint64(index)))
}

// Bytes is a Chooser that reads its choices from fuzz input; once the input
// is used up every choice is 0, so any input makes a finite conversation.
type Bytes struct {
	data []byte
	i    int
}

// NewBytes returns a Chooser over data.
func NewBytes(data []byte) *Bytes { return &Bytes{data: data} }

// IntN reads as many bytes as n needs.
func (b *Bytes) IntN(n int) int {
	v := 0
	for m := n - 1; m > 0; m >>= 8 {
		v <<= 8
		if b.i < len(b.data) {
			v |= int(b.data[b.i])
			b.i++
		}
	}
	return v % n
}

// pick returns i with probability weights[i] / sum(weights); a weight of 0
// is never picked. At least one weight must be positive.
func pick(ch Chooser, weights ...int) int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	r := ch.IntN(sum)
	for i, w := range weights {
		if r < w {
			return i
		}
		r -= w
	}
	panic("difftest: pick without a positive weight")
}

// chance is true with probability 1/n.
func chance(ch Chooser, n int) bool { return ch.IntN(n) == 0 }

// oneOf returns one of xs.
func oneOf[T any](ch Chooser, xs ...T) T { return xs[ch.IntN(len(xs))] }
