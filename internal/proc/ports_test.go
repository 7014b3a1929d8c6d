package proc

import (
	"net"
	"os"
	"slices"
	"testing"
)

const procNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1210: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1011670 2 000000001a07decb 0
 1211: 00000000:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1011671 2 000000001e733356 0
 1600: 0100007F:A88C 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1011647 2 000000002d859362 0
`

const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:13C4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1525 1 00000000f4f03bb4 100 0 0 10 0
   1: 0100007F:13C4 0100007F:A193 01 00000000:00000000 00:00000000 00000000     0        0 1011652 2 0000000010d3ad98 100 0 0 10 0
`

func TestParseProcNet(t *testing.T) {
	got, err := ParseProcNet([]byte(procNetUDP), 5060, false)
	if err != nil || !slices.Equal(got, []uint64{1011670, 1011671}) {
		t.Fatalf("udp 5060: %v %v", got, err)
	}
	// A connection from port 5060 is not a socket bound to it for listening.
	got, err = ParseProcNet([]byte(procNetTCP), 5060, true)
	if err != nil || !slices.Equal(got, []uint64{1525}) {
		t.Fatalf("tcp 5060: %v %v", got, err)
	}
	if _, err := ParseProcNet([]byte("h\n 0: 0100007F 00000000:0000 07 0 0 0 0 0 1\n"), 1, false); !refused(t, err) {
		t.Fatal("a local address without a port was not refused")
	}
}

// PortHolders finds this test's own listener.
func TestPortHolders(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hs, err := PortHolders("tcp", l.Addr().(*net.TCPAddr).Port)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(hs, func(h Holder) bool { return h.PID == os.Getpid() }) {
		t.Fatalf("holders %v do not include this process (pid %d)", hs, os.Getpid())
	}
}

func FuzzParseProcNet(f *testing.F) {
	f.Add([]byte(procNetUDP), 5060, false)
	f.Add([]byte(procNetTCP), 5060, true)
	f.Add([]byte("h\n 0: :13C4 0 0A 0 0 0 0 0 x\n"), 5060, true)
	f.Fuzz(func(t *testing.T, b []byte, port int, tcp bool) {
		if _, err := ParseProcNet(b, port, tcp); err != nil {
			refused(t, err)
		}
	})
}
