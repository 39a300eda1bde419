package lincheck

import (
	"testing"

	"github.com/anishathalye/porcupine"

	"github.com/imapfront/imapfront/mupdatec"
)

func op(cl int, in Input, call int64, out Output, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret}
}

var (
	resA = Input{Op: Reserve, Name: "n", Location: "a!p"}
	resB = Input{Op: Reserve, Name: "n", Location: "b!p"}
	find = Input{Op: Find, Name: "n"}
	del  = Input{Op: Delete, Name: "n"}
	ok   = Output{Status: OK}
	no   = Output{Status: NO}
	unk  = Output{Status: Unknown}
	gone = Output{Status: OK, Found: false}
	isA  = Output{Status: OK, Found: true, Entry: mupdatec.Entry{Name: "n", Reserved: true, Location: "a!p"}}
)

func TestModel(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    []porcupine.Operation
		want bool
	}{
		{"sequential", []porcupine.Operation{op(0, resA, 0, ok, 1), op(0, resB, 2, no, 3), op(1, find, 4, isA, 5),
			op(0, del, 6, ok, 7), op(1, del, 8, no, 9), op(1, find, 10, gone, 11)}, true},
		{"two winners of one RESERVE", []porcupine.Operation{op(0, resA, 0, ok, 1), op(1, resB, 2, ok, 3)}, false},
		{"concurrent RESERVEs, one wins", []porcupine.Operation{op(0, resA, 0, no, 5), op(1, resB, 1, ok, 4),
			op(2, find, 6, Output{Status: OK, Found: true, Entry: mupdatec.Entry{Name: "n", Reserved: true, Location: "b!p"}}, 7)}, true},
		{"stale read after DELETE", []porcupine.Operation{op(0, resA, 0, ok, 1), op(0, del, 2, ok, 3), op(1, find, 4, isA, 5)}, false},
		{"DELETE of nothing said OK", []porcupine.Operation{op(0, del, 0, ok, 1)}, false},
		{"unknown RESERVE taken", []porcupine.Operation{op(0, resA, 0, unk, 1), op(1, find, 2, isA, 3)}, true},
		{"unknown RESERVE not taken", []porcupine.Operation{op(0, resA, 0, unk, 1), op(1, find, 2, gone, 3)}, true},
		{"unknown applies once", []porcupine.Operation{op(0, resA, 0, unk, 1), op(1, find, 2, isA, 3), op(1, del, 4, ok, 5),
			op(1, find, 6, isA, 7)}, false},
	} {
		r := &Recorder{}
		for _, o := range tc.h {
			r.Add(o.ClientId, o.Input.(Input), o.Call, o.Output.(Output), o.Return)
		}
		if got := r.Check(0) == porcupine.Ok; got != tc.want {
			t.Errorf("%s: linearizable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
