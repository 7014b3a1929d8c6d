package store

// The transform rules of docs/dsm-protocol.md ("Transform (Jupiter)"). The tie-break is
// "the op ordered later by the server wins" on every field both ops touch. A client's
// pending op is always ordered after every server op it has not yet seen, so:
//
//	transform(c, s) = c
//	transform(s, c) = s without the elements on fields that c sets or deletes,
//	                  and without expects (a committed op carries no condition)
//
// webclient/dsm.js implements the same two functions; FuzzTransformTP1 checks convergence.

// TransformClient returns transform(c, s): the client op c as the server applies it after
// the concurrent server op s. With the later-wins tie-break it is c itself; it exists so
// that both directions of the rule are named and tested.
func TransformClient(c, s []Op) []Op { return c }

// TransformServer returns transform(s, pending...): the committed server op s as a
// replica applies it on top of its pending local ops (in flight and buffered), which the
// server will order after s. Elements of s on a field that any pending op sets or deletes
// are dropped, as are expects. It returns nil when nothing remains.
func TransformServer(s []Op, pending ...[]Op) []Op {
	var touched map[string]struct{}
	for _, p := range pending {
		for _, o := range p {
			if o.Kind == OpExpect {
				continue
			}
			if touched == nil {
				touched = make(map[string]struct{})
			}
			touched[o.Field] = struct{}{}
		}
	}
	var out []Op
	for _, o := range s {
		if o.Kind == OpExpect {
			continue
		}
		if _, hit := touched[o.Field]; hit {
			continue
		}
		out = append(out, o)
	}
	return out
}
