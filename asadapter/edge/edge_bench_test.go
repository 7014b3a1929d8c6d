package edge

import (
	"net/netip"
	"testing"
)

// BenchmarkDatagram is the edge's cost per datagram: from the trust domain (passed
// untouched), and from a flooding source (past its buckets: dropped), with the cost of a
// stateless answer for comparison.
func BenchmarkDatagram(b *testing.B) {
	inv := readMsg(b, "invite.sip")
	for _, bc := range []struct {
		name string
		src  netip.AddrPort
		cfg  Config
	}{
		{"trusted", cscf, Config{}},
		{"flood dropped", attacker, Config{}},
		{"untrusted answered 403", attacker, Config{SourceRate: 1e12, SourceDropRate: 1e12}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e, _ := testEdge(b, bc.cfg, nil)
			answers := 0
			reply := func([]byte) { answers++ }
			b.ReportAllocs()
			b.SetBytes(int64(len(inv)))
			for b.Loop() {
				e.Datagram(bc.src, inv, reply)
			}
			b.ReportMetric(float64(answers)/float64(b.N), "answers/op")
		})
	}
}
