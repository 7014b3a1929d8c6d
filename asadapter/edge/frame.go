package edge

import (
	"bytes"
	"fmt"
)

// Framer splits the bytes of one stream connection (TCP, TLS) into SIP messages by their
// Content-Length, as sipgo's stream parser does, so that the edge decides on whole
// messages whatever pieces the reads deliver. It holds only the bytes of a message not
// yet complete, at most MaxMessage, and nothing between messages.
type Framer struct {
	buf []byte // the start of an incomplete message
}

// Feed adds data read from the stream and calls each for every message it completes,
// with its scan (each must not keep msg: it may be the Framer's buffer). Keep-alive line
// ends between messages (RFC 5626 section 3.5.1) are skipped. An error leaves no message
// boundary to resynchronise on: the caller closes the connection.
func (f *Framer) Feed(data []byte, each func(msg []byte, m *Message)) error {
	in := data
	if len(f.buf) > 0 {
		f.buf = append(f.buf, data...)
		in = f.buf
	}
	var m Message
	for {
		i := 0
		for i < len(in) && (in[i] == '\r' || in[i] == '\n') {
			i++
		}
		in = in[i:]
		if len(in) == 0 {
			break
		}
		end := headerEnd(in)
		if end < 0 {
			if len(in) > MaxMessage {
				f.buf = nil
				return fmt.Errorf("%w: header section beyond %d bytes", ErrTooLarge, MaxMessage)
			}
			break
		}
		if err := scan(in[:end], &m, false); err != nil {
			f.buf = nil
			return err
		}
		if !m.hasContentLength {
			// RFC 3261 section 18.3: it must be present on a stream, which is framed by it.
			f.buf = nil
			return fmt.Errorf("%w: no Content-Length on a stream", ErrBadHeader)
		}
		total := end + m.ContentLength
		if total > MaxMessage {
			f.buf = nil
			return fmt.Errorf("%w: %d bytes", ErrTooLarge, total)
		}
		if len(in) < total {
			break
		}
		each(in[:total], &m)
		in = in[total:]
	}
	switch {
	case len(in) == 0:
		f.buf = nil // an idle connection holds nothing
	case len(f.buf) > 0:
		// in lies inside f.buf: move it to the front.
		f.buf = f.buf[:copy(f.buf, in)]
	default:
		f.buf = append([]byte(nil), in...)
	}
	return nil
}

// Pending reports how many bytes of an incomplete message the Framer holds.
func (f *Framer) Pending() int { return len(f.buf) }

// headerEnd returns the offset after the empty line that ends b's header section, or -1.
func headerEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}
