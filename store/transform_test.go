package store

import (
	"encoding/json"
	"maps"
	"testing"
)

// decodeOps turns fuzz bytes into a small op on a small field space, so collisions between
// the two ops are frequent.
func decodeOps(b []byte) []Op {
	var ops []Op
	for i := 0; i+1 < len(b) && len(ops) < 6; i += 2 {
		f := string('a' + rune(b[i]%4))
		v := string('0' + rune(b[i+1]%3))
		switch b[i] % 3 {
		case 0:
			ops = append(ops, Set(f, v))
		case 1:
			ops = append(ops, Del(f))
		default:
			ops = append(ops, Expect(f, v))
		}
	}
	return ops
}

func applied(x map[string]string, ops ...[]Op) map[string]string {
	y := maps.Clone(x)
	for _, o := range ops {
		Apply(y, o)
	}
	return y
}

// FuzzTransformTP1 checks convergence: X·s·T(c,s) == X·c·T(s,c) for any state and any two
// concurrent ops, and the same with a buffered op after the in-flight one.
func FuzzTransformTP1(f *testing.F) {
	f.Add([]byte{0, 1, 2}, []byte{0, 2}, []byte{3, 1})
	f.Add([]byte{1, 1, 0, 0}, []byte{0, 0, 4, 1}, []byte{})
	f.Fuzz(func(t *testing.T, xb, sb, cb []byte) {
		x := map[string]string{}
		for i := 0; i+1 < len(xb) && i < 8; i += 2 {
			x[string('a'+rune(xb[i]%4))] = string('0' + rune(xb[i+1]%3))
		}
		s, c := decodeOps(sb), decodeOps(cb)
		left := applied(x, s, TransformClient(c, s))
		right := applied(x, c, TransformServer(s, c))
		if !maps.Equal(left, right) {
			js, _ := json.Marshal(map[string]any{"x": x, "s": s, "c": c})
			t.Fatalf("diverged: server %v client %v for %s", left, right, js)
		}
		// In flight c1 and buffered c2: the server applies s, c1, c2 in that order.
		half := len(c) / 2
		c1, c2 := c[:half], c[half:]
		left = applied(x, s, c1, c2)
		right = applied(x, c1, c2, TransformServer(s, c1, c2))
		if !maps.Equal(left, right) {
			t.Fatalf("diverged with buffer: %v vs %v", left, right)
		}
	})
}

func TestTransformServerDropsTouchedAndExpects(t *testing.T) {
	s := []Op{Expect("st", "a"), Set("st", "b"), Set("x", "1"), Del("y")}
	c := []Op{Expect("x", "0"), Del("st")}
	got := TransformServer(s, c)
	want := []Op{Set("x", "1"), Del("y")}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Fatalf("got %s want %s", gj, wj)
	}
}
