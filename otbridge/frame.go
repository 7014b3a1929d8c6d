package otbridge

import (
	"time"
)

// The writer frames server messages itself and writes a whole batch of them with one
// write: under load a connection's queue holds several messages (an ack and the ops of
// the objects it reads), and gorilla's WriteMessage costs one write syscall per message,
// which was a third of the gateway's CPU. Gorilla still writes the control frames (ping,
// pong, close); a net.Conn write is atomic with respect to another (the descriptor's write
// lock is held for the whole call), so frames never interleave, and c.wmu orders the close
// frame after the last batch.

// maxFrameHeader is the longest header of an unmasked server frame (RFC 6455 5.2).
const maxFrameHeader = 10

// maxBatchBytes bounds one write: a long queue is written in several writes of at most
// this size, so the pooled buffer stays small and a write deadline covers a bounded write.
const maxBatchBytes = 64 << 10

// appendFrame appends msg as one unmasked, final text frame (a server never masks).
func appendFrame(b, msg []byte) []byte {
	const finText = 0x80 | 0x1
	n := len(msg)
	switch {
	case n < 126:
		b = append(b, finText, byte(n))
	case n <= 0xFFFF:
		b = append(b, finText, 126, byte(n>>8), byte(n))
	default:
		b = append(b, finText, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, msg...)
}

// writeBatch writes batch as text frames, as few writes as maxBatchBytes allows. It stops
// without writing when the connection is closing (the close frame is the last frame).
func (c *conn) writeBatch(batch [][]byte) error {
	bp := c.b.writeBufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 2*maxBatchBytes {
			c.b.writeBufs.Put(bp)
		}
	}()
	nc := c.ws.NetConn()
	for i := 0; i < len(batch); {
		buf := (*bp)[:0]
		for ; i < len(batch) && (len(buf) == 0 || len(buf)+maxFrameHeader+len(batch[i]) <= maxBatchBytes); i++ {
			buf = appendFrame(buf, batch[i])
			batch[i] = nil
		}
		*bp = buf
		c.wmu.Lock()
		if c.shut.Load() {
			c.wmu.Unlock()
			return nil
		}
		_ = nc.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
		_, err := nc.Write(buf)
		c.wmu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}
