package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// Every op sets one field to a 32-byte value that identifies it: the writing client's
// index, the op's sequence number at that client and its submit time (ns since the start
// of the run), each in fixed-width hex. Receivers thus find the op's record and latency
// from the value alone, with no shared map between writer and readers, and ops the client
// composes into one message (open loop, an op buffered behind another) stay distinct.
const valueLen = 32

const hexDigits = "0123456789abcdef"

func putHex(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = hexDigits[v&15]
		v >>= 4
	}
}

// encodeValue returns the value of op seq of client idx submitted at ns.
func encodeValue(idx, seq uint32, ns int64) string {
	var b [valueLen]byte
	putHex(b[0:8], uint64(idx))
	putHex(b[8:16], uint64(seq))
	putHex(b[16:32], uint64(ns))
	return string(b[:])
}

func parseHex(s string) (uint64, bool) {
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// decodeValue reverses encodeValue; ok is false for any other value (such as the initial
// field values).
func decodeValue(v string) (idx, seq uint32, ns int64, ok bool) {
	if len(v) != valueLen {
		return 0, 0, 0, false
	}
	a, ok1 := parseHex(v[0:8])
	b, ok2 := parseHex(v[8:16])
	c, ok3 := parseHex(v[16:32])
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, false
	}
	return uint32(a), uint32(b), int64(c), true
}

// opRec is what the run knows about one submitted op.
type opRec struct {
	expect int32 // other subscribers of the object when it was submitted
	acked  atomic.Bool
	nacked atomic.Bool
	recv   atomic.Int32 // receipts by other subscribers
}

// recChunk records are allocated at a time, so a record never moves once handed out.
const recChunk = 1024

// recTable holds one client's op records, indexed by the op's seq. The writer adds, the
// reader goroutines of every other subscriber look records up; the mutex also orders a
// record's initialisation before any lookup.
type recTable struct {
	mu     sync.Mutex // guards chunks and n
	chunks []*[recChunk]opRec
	n      uint32
}

// add makes the record of the next op and returns it with its seq.
func (t *recTable) add(expect int32) (*opRec, uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seq := t.n
	if int(seq/recChunk) == len(t.chunks) {
		t.chunks = append(t.chunks, new([recChunk]opRec))
	}
	r := &t.chunks[seq/recChunk][seq%recChunk]
	r.expect = expect
	t.n++
	return r, seq
}

// get returns the record of seq, or nil if no such op was submitted.
func (t *recTable) get(seq uint32) *opRec {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq >= t.n {
		return nil
	}
	return &t.chunks[seq/recChunk][seq%recChunk]
}

// each calls fn for every record.
func (t *recTable) each(fn func(*opRec)) {
	t.mu.Lock()
	n := t.n
	chunks := t.chunks
	t.mu.Unlock()
	for i := uint32(0); i < n; i++ {
		fn(&chunks[i/recChunk][i%recChunk])
	}
}

// window marks the measured interval in ns since the start of the run; before it is
// opened both ends are in the far future, so nothing counts during the warmup.
type window struct {
	start, end atomic.Int64
}

const never = int64(1<<63 - 1)

func newWindow() *window {
	w := &window{}
	w.start.Store(never)
	w.end.Store(never)
	return w
}

func (w *window) has(ns int64) bool { return ns >= w.start.Load() && ns < w.end.Load() }

func (w *window) open(ns int64)  { w.start.Store(ns) }
func (w *window) close(ns int64) { w.end.Store(ns) }

func (w *window) length() time.Duration { return time.Duration(w.end.Load() - w.start.Load()) }
