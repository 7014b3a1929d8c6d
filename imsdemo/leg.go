package imsdemo

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/floorctl"
	"dsmgw/imsdemo/mixer"
)

// leg is one participant's session in a room: its SIP dialog, its RTP port and its
// member of the room's mixer.
type leg struct {
	s     *Server
	room  *room
	id    string // the Call-ID: the leg's member ID in its talk group's floor control
	log   *slog.Logger
	media *mediaPort
	// fc is the floor control port of a talk group member (nil in the other rooms);
	// fparams the MCPTT fmtp of our answer.
	fc      *floorPort
	fparams floorctl.Params
	ackC    chan struct{} // capacity 1: an ACK arrived
	done    chan struct{} // closed when the leg has ended
	once    sync.Once

	mu     sync.Mutex // guards everything below
	dlg    dialog
	neg    negotiated
	sessID uint64
	sdpVer uint64
	part   *mixer.Participant
	// awaitAnswer: we offered in a 2xx (a re-INVITE came without SDP), so the ACK
	// carries the answer.
	awaitAnswer bool
	// answering: a 2xx of ours waits for its ACK; a re-INVITE meanwhile gets 491.
	answering bool
	// ending: end has begun (its BYE may take a while); the janitor leaves it be.
	ending bool
	// since is when media was last expected to start (the session, or a resume): the
	// media timeout counts from here when nothing came after it.
	since time.Time
	// floor is whether the participant may talk apart from hold: always in a
	// conference; in a talk group only while its floor control server grants it the
	// floor.
	floor bool

	ep *endpoint // the leg's entry in the conference state; guarded by room.mu
}

// status is the endpoint status a direction shows: a participant that stopped
// receiving (sendonly, inactive) has put the conference on hold.
func status(d Direction) string {
	if d.receives() {
		return statusConnected
	}
	return statusOnHold
}

// fillEndpoint copies the leg's media state into its endpoint (room.mu held).
func (l *leg) fillEndpoint(e *endpoint) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.status, e.dir, e.ssrc = status(l.neg.dir), l.neg.dir, l.part.SSRC()
	e.callID, e.fromTag, e.toTag = l.dlg.callID, l.dlg.remoteTag, l.dlg.localTag
}

// applyLocked makes the media follow a new negotiation (l.mu held): the gates, where the
// mix goes, and a new mixer member when the codec changed. A participant that sends
// without receiving has put us on hold and may be playing music: it is not mixed.
func (l *leg) applyLocked(n negotiated) error {
	old := l.neg
	if l.part == nil || n.codec != l.part.Codec() {
		// A new codec is a new stream with an SSRC of its own (RFC 3550 section 8.2:
		// its sequence and timestamp start afresh too).
		p, err := l.room.mix.Add(mixer.ParticipantConfig{Codec: n.codec, SSRC: rand.Uint32(), IgnorePT: n.eventPT, Sink: l.media})
		if err != nil {
			return err
		}
		if l.part != nil {
			l.room.mix.Remove(l.part)
		}
		l.part = p
		l.media.part.Store(p)
	}
	l.neg = n
	if n.remote.IsValid() {
		l.media.setRemote(n.remote)
	}
	l.gatesLocked()
	if n.dir.sends() && !old.dir.sends() {
		l.since = time.Now()
	}
	return nil
}

// gatesLocked opens the participant's way into the mix when it sends and receives and
// holds the floor, and the mix toward it when it receives somewhere (l.mu held).
func (l *leg) gatesLocked() {
	l.part.SetSpeak(l.neg.dir == SendRecv && l.floor)
	l.part.SetListen(l.neg.dir.receives() && l.neg.remote.IsValid())
}

// setFloor gives or takes the right to talk: the hook of a floor control server.
func (l *leg) setFloor(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.floor = on
	if l.part != nil {
		l.gatesLocked()
	}
}

// answerLocked renders our answer to the last negotiation (l.mu held).
func (l *leg) answerLocked(offer *sessionDesc) []byte {
	l.sdpVer++
	return answerSDP(offer, l.neg, l.floorAnswer(), l.s.cfg.RTPPublicAddr, l.media.port, l.sessID, l.sdpVer)
}

// floorAnswer is the leg's floor control stream for an answer or offer: none outside
// talk groups.
func (l *leg) floorAnswer() floorAnswer {
	if l.fc == nil {
		return floorAnswer{}
	}
	return floorAnswer{port: l.fc.port, params: l.fparams}
}

// timedOut reports whether the participant should be sending and sent nothing for the
// media timeout. A talk group member sends only while it holds the floor, and a silent
// talker is revoked after the maximum talk time; so in a talk group the timeout does not
// apply (a dead member still ends with its SIP session).
func (l *leg) timedOut(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ending || !l.neg.dir.sends() || l.part == nil || l.fc != nil {
		return false
	}
	last := l.part.LastReceived()
	if last.Before(l.since) {
		last = l.since
	}
	return now.Sub(last) > l.s.cfg.MediaTimeout
}

// end ends the leg once: out of the mixer, the port closed, out of the conference state
// (subscribers see it disconnected with method and reason), and, when we end it, a BYE
// to the participant (RFC 3326 Reason says why).
func (l *leg) end(ctx context.Context, method, reason string, bye bool) {
	l.once.Do(func() {
		l.mu.Lock()
		part := l.part
		l.ending = true
		l.mu.Unlock()
		if l.room.tg != nil {
			l.room.tg.leave(l) // the floor moves on before the session is gone
		}
		if part != nil {
			l.room.mix.Remove(part)
		}
		l.media.close()
		if l.fc != nil {
			l.fc.close()
		}
		l.s.removeLeg(l)
		if l.room.leave(l, method, reason) {
			l.s.dropRoom(l.room)
		}
		l.log.Info("participant left", "method", method, "reason", reason, "stats", statsOf(part))
		if bye {
			l.mu.Lock()
			req := l.s.request(&l.dlg, sip.BYE, "", nil)
			l.mu.Unlock()
			req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=`+reasonCause(method)+`;text="`+reason+`"`))
			if res, err := l.s.do(ctx, req); err != nil {
				l.log.Info("BYE not answered", "err", err)
			} else if !res.IsSuccess() {
				l.log.Info("BYE refused", "status", res.StatusCode)
			}
		}
		close(l.done)
	})
}

// reasonCause is the SIP cause of our BYE's Reason header.
func reasonCause(method string) string {
	if method == discFailed {
		return "408" // the peer stopped answering (no ACK, no media)
	}
	return "480" // the server is going away
}

// statsOf condenses a participant's counters for the leave log line.
func statsOf(p *mixer.Participant) map[string]uint64 {
	if p == nil {
		return nil
	}
	s := p.Stats()
	return map[string]uint64{"received": s.Received, "sent": s.Sent, "bad": s.Bad, "ignored": s.Ignored,
		"late": s.Jitter.Late, "lost": s.Jitter.Lost, "overflow": s.Jitter.Overflow, "resyncs": s.Jitter.Resyncs}
}
