package imsdemo

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/floorctl"
	"dsmgw/imsdemo/mixer"
)

// SIP timers of the 2xx retransmissions we do as UAS (RFC 3261 section 13.3.1.4): T1
// 500 ms doubling up to T2 4 s, for at most 64*T1 = 32 s.
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
	timerH  = 64 * timerT1
)

// onInvite answers an INVITE: a re-INVITE in a session, or a newcomer to a room (the
// room is created on its first INVITE) or to the echo service.
func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		s.reply(tx, req, 400, "Bad Request", "", nil)
		return
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.onReInvite(req, tx)
		return
	}
	callID := req.CallID().Value()
	log := s.log.With("call_id", callID, "room", req.Recipient.User)
	if s.draining.Load() {
		s.reply(tx, req, 503, "Service Unavailable", "", nil, sip.NewHeader("Retry-After", "5"))
		return
	}
	if s.legByCallID(callID) != nil {
		s.reply(tx, req, 482, "Loop Detected", "", nil) // a forked copy of a session we have
		return
	}
	name, kind := req.Recipient.User, s.kindOf(req.Recipient)
	if !validRoomName(name) {
		s.reply(tx, req, 404, "Not Found", "", nil)
		return
	}
	if len(req.Body()) == 0 {
		// A late offer would make the ACK carry the answer; phones and the gateway all
		// offer in the INVITE, so the demo does not take the other way.
		s.reply(tx, req, 488, "Not Acceptable Here (offer required)", "", nil)
		return
	}
	offer, err := parseSDP(req.Body())
	if err != nil {
		log.Info("bad SDP offer", "err", err)
		s.reply(tx, req, 400, "Bad SDP", "", nil)
		return
	}
	n, err := negotiate(offer)
	if err != nil {
		s.reply(tx, req, 488, "Not Acceptable Here", "", nil, sip.NewHeader("Warning", `304 imsdemo "PCMU or PCMA audio only"`))
		return
	}
	var fm floorctl.Media
	if kind == KindTalkGroup {
		if fm, err = floorctl.ParseMedia(req.Body()); err != nil {
			code, reason, warn := 488, "Not Acceptable Here", `304 imsdemo "a talk group needs MCPTT floor control (m=application <port> udp MCPTT)"`
			if !errors.Is(err, floorctl.ErrNoFloorControl) {
				code, reason, warn = 400, "Bad SDP", `399 imsdemo "`+sanitize(err.Error())+`"`
			}
			log.Info("talk group offer refused", "err", err)
			s.reply(tx, req, code, reason, "", nil, sip.NewHeader("Warning", warn))
			return
		}
	}
	media, err := openMedia(s.ports2, log)
	if err != nil {
		log.Warn("no RTP port", "err", err)
		s.reply(tx, req, 503, "Service Unavailable", "", nil)
		return
	}
	l := &leg{s: s, id: callID, log: log, media: media, ackC: make(chan struct{}, 1), done: make(chan struct{}),
		sessID: rand.Uint64N(1 << 62), since: time.Now(), floor: kind != KindTalkGroup}
	if kind == KindTalkGroup {
		if l.fc, err = openFloorPort(s.ports2, netip.AddrPortFrom(fm.Addr, uint16(fm.Port)), log); err != nil {
			media.close()
			log.Warn("no floor control port", "err", err)
			s.reply(tx, req, 503, "Service Unavailable", "", nil)
			return
		}
		// Queueing when both sides support it, the offered priority (TS 24.380 section 14).
		l.fparams = floorctl.AnswerParams(fm.Params, floorctl.Params{Queueing: !s.cfg.Floor.NoQueueing})
	}
	l.dlg = newDialog(req, sip.GenerateTagN(16), name)
	r, err := s.reserve(name, kind, l)
	if err != nil {
		media.close()
		code, reason := 503, "Service Unavailable"
		if errors.Is(err, mixer.ErrFull) {
			code, reason = 486, "Busy Here (room full)"
		}
		log.Info("cannot join", "err", err)
		s.reply(tx, req, code, reason, "", nil)
		return
	}
	l.room = r
	l.mu.Lock()
	err = l.applyLocked(n)
	var answer []byte
	if err == nil {
		answer = l.answerLocked(offer)
		l.answering = true
	}
	l.mu.Unlock()
	if err != nil {
		media.close()
		if l.fc != nil {
			l.fc.close()
		}
		if r.leave(l, discFailed, "setup") {
			s.dropRoom(r)
		}
		log.Info("cannot join", "err", err)
		s.reply(tx, req, 486, "Busy Here (room full)", "", nil)
		return
	}
	s.addLeg(l)
	media.start()
	if l.fc != nil {
		l.fc.start(func(d []byte) bool { return r.tg.receive(l, d) })
	}
	aor, display := identity(req)
	contact := aor.String()
	if c := req.Contact(); c != nil {
		contact = bareURI(c.Address).String()
	}
	r.join(l, aor.String(), display, contact)
	log.Info("participant joined", "kind", kind.String(), "user", aor.String(), "codec", n.codec.String(),
		"direction", string(n.dir), "rtp_port", media.port)
	ok := s.respond2xx(tx, req, l, answer)
	l.mu.Lock()
	l.answering = false
	l.mu.Unlock()
	if !ok {
		l.end(s.runContext(), discFailed, "no ACK", true)
		return
	}
	if r.tg != nil {
		// After the ACK: the member's floor participant is up, and Floor Idle or Floor
		// Taken tells it at once who talks.
		if err := r.tg.join(l, aor.String(), l.fparams); err != nil {
			log.Info("cannot join the floor", "err", err)
			l.end(s.runContext(), discFailed, "floor control", true)
		}
	}
}

// sanitize keeps text fit for a quoted Warning header: no quotes, no control
// characters, at most 120 bytes.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b[i] = '?'
		}
	}
	if len(b) > 120 {
		b = b[:120]
	}
	return string(b)
}

// onReInvite answers a re-INVITE: hold (sendonly, inactive), resume, a new address or
// codec, or a session refresh without an offer (we offer the stream as it is).
func (s *Server) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	l := s.dialogLeg(req)
	if l == nil {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist", "", nil)
		return
	}
	l.mu.Lock()
	if !l.dlg.inSequence(req) {
		l.mu.Unlock()
		s.reply(tx, req, 500, "Server Internal Error (CSeq out of order)", "", nil)
		return
	}
	if l.answering {
		l.mu.Unlock()
		s.reply(tx, req, 491, "Request Pending", "", nil)
		return
	}
	if c := req.Contact(); c != nil {
		l.dlg.target = c.Address // a re-INVITE may move the remote target
	}
	var body []byte
	if len(req.Body()) == 0 {
		l.sdpVer++
		body = offerSDP(s.cfg.RTPPublicAddr, l.media.port, l.floorAnswer(), l.neg.codec, l.neg.eventPT, l.neg.dir,
			l.sessID, l.sdpVer)
		l.awaitAnswer = true
	} else {
		offer, err := parseSDP(req.Body())
		var n negotiated
		if err == nil {
			n, err = negotiate(offer)
		}
		if err == nil {
			err = l.applyLocked(n)
		}
		if err == nil && l.fc != nil {
			// A new floor address or port follows the offer, as the audio's does.
			if fm, ferr := floorctl.ParseMedia(req.Body()); ferr == nil {
				l.fc.setRemote(netip.AddrPortFrom(fm.Addr, uint16(fm.Port)))
			}
		}
		if err != nil {
			l.mu.Unlock()
			l.log.Info("re-INVITE refused; the session goes on as it was", "err", err)
			s.reply(tx, req, 488, "Not Acceptable Here", "", nil)
			return
		}
		body = l.answerLocked(offer)
	}
	l.answering = true
	l.mu.Unlock()
	l.room.update(l)
	l.log.Info("session modified", "direction", string(l.direction()))
	ok := s.respond2xx(tx, req, l, body)
	l.mu.Lock()
	l.answering = false
	l.mu.Unlock()
	if !ok {
		l.end(s.runContext(), discFailed, "no ACK", true)
	}
}

func (l *leg) direction() Direction {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.neg.dir
}

// respond2xx sends a 2xx with our SDP and retransmits it over UDP until the ACK arrives
// (RFC 3261 section 13.3.1.4); false when none came in 32 s.
func (s *Server) respond2xx(tx sip.ServerTransaction, req *sip.Request, l *leg, body []byte) bool {
	select { // an old ACK must not count for this 2xx
	case <-l.ackC:
	default:
	}
	l.mu.Lock()
	tag, user, tp := l.dlg.localTag, l.dlg.user, l.dlg.transport
	l.mu.Unlock()
	res := s.reply(nil, req, 200, "OK", tag, body, s.contact(user, tp),
		sip.NewHeader("Content-Type", "application/sdp"), sip.NewHeader("Allow", allowMethods),
		sip.NewHeader("Allow-Events", "conference"))
	if err := tx.Respond(res); err != nil {
		l.log.Debug("respond 2xx failed", "err", err)
	}
	reliable := sip.IsReliable(req.Transport())
	wait := timerT1
	deadline := time.NewTimer(timerH)
	defer deadline.Stop()
	for {
		var retransmit <-chan time.Time
		if !reliable {
			retransmit = time.After(wait)
		}
		select {
		case <-l.ackC:
			return true
		case <-l.done:
			return true // ended meanwhile (BYE, shutdown): nothing to wait for
		case <-deadline.C:
			return false
		case <-retransmit:
			_ = tx.Respond(res)
			wait = min(2*wait, timerT2)
		}
	}
}

// onAck confirms a 2xx; after an offer of ours it carries the answer.
func (s *Server) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if !wellFormed(req) {
		return
	}
	l := s.dialogLeg(req)
	if l == nil {
		return
	}
	l.mu.Lock()
	changed := false
	if l.awaitAnswer && len(req.Body()) > 0 {
		l.awaitAnswer = false
		ans, err := parseSDP(req.Body())
		var n negotiated
		if err == nil {
			n, err = negotiate(ans)
		}
		if err == nil && n.codec == l.neg.codec {
			err = l.applyLocked(n)
			changed = err == nil
		}
		if err != nil {
			l.log.Info("answer in ACK unusable; the session goes on as it was", "err", err)
		}
	}
	l.mu.Unlock()
	if changed {
		l.room.update(l)
	}
	select {
	case l.ackC <- struct{}{}:
	default:
	}
}

// onBye ends a participant's session at its request.
func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		s.reply(tx, req, 400, "Bad Request", "", nil)
		return
	}
	l := s.dialogLeg(req)
	if l == nil {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist", "", nil)
		return
	}
	s.reply(tx, req, 200, "OK", "", nil)
	l.end(context.Background(), discDeparted, "BYE", false)
}

// onCancel sees only CANCELs that match no INVITE transaction (sipgo answers the others).
// We answer INVITEs at once, so a CANCEL finds nothing to cancel.
func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.reply(tx, req, 481, "Call/Transaction Does Not Exist", "", nil)
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.reply(tx, req, 200, "OK", "", nil, sip.NewHeader("Allow", allowMethods),
		sip.NewHeader("Accept", "application/sdp"), sip.NewHeader("Allow-Events", "conference"))
}

// dialogLeg finds the session of an in-dialog request.
func (s *Server) dialogLeg(req *sip.Request) *leg {
	l := s.legByCallID(req.CallID().Value())
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.dlg.matches(req) {
		return nil
	}
	return l
}
