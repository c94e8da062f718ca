package cleanup

import (
	"slices"
	"testing"
)

func TestARunUndoesInReverseOrderOnce(t *testing.T) {
	var s Stack
	var got []int
	for i := range 3 {
		s.Push(func() { got = append(got, i) })
	}
	s.Run()
	s.Run()
	if !slices.Equal(got, []int{2, 1, 0}) {
		t.Fatalf("ran %v, want [2 1 0] once", got)
	}
}

func TestWhatIsPushedAfterTheRunRunsAtOnce(t *testing.T) {
	var s Stack
	s.Run()
	ran := false
	s.Push(func() { ran = true })
	if !ran {
		t.Fatal("a function pushed after Run was never run")
	}
}

func TestAPanickingFunctionStillLetsTheOthersRun(t *testing.T) {
	var s Stack
	first := false
	s.Push(func() { first = true })
	s.Push(func() { panic("boom") })
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic was swallowed")
			}
		}()
		s.Run()
	}()
	if !first {
		t.Fatal("a panic above it kept the first function from running")
	}
}
