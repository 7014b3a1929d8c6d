package imsdemo

import (
	"encoding/json"
	"fmt"
	"net/http"

	"dsmgw/imsdemo/mixer"
)

// newRoom makes a room and puts its mixer on the least busy clock (s.mu held).
func (s *Server) newRoom(name string, kind Kind) (*room, error) {
	mc := s.cfg.Mixer
	if kind == KindEcho {
		mc.HearSelf, mc.MaxParticipants = true, 1
	}
	sched := s.scheds[0]
	for _, sc := range s.scheds[1:] {
		if sc.Len() < sched.Len() {
			sched = sc
		}
	}
	uri := s.RoomURI(name)
	if kind == KindTalkGroup {
		uri = s.TalkGroupURI(name)
	}
	r := &room{s: s, name: name, uri: uri, kind: kind, mix: mixer.New(mc), sched: sched,
		log: s.log.With("room", name, "kind", kind.String()), legs: map[*leg]struct{}{}, subs: map[*subscription]struct{}{}}
	if kind == KindTalkGroup {
		tg, err := newTalkGroup(s.cfg.Floor, r.log)
		if err != nil {
			return nil, err
		}
		r.tg = tg
	}
	sched.Add(r.mix)
	return r, nil
}

// reserve finds or creates the room of a newcomer and holds a place in it.
func (s *Server) reserve(name string, kind Kind, l *leg) (*room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := roomKey{kind, name}
	r := s.rooms[key]
	if r == nil || kind == KindEcho {
		if len(s.rooms)+len(s.echo) >= s.cfg.MaxRooms {
			return nil, fmt.Errorf("imsdemo: room %s: %w (%d)", name, ErrTooManyRooms, s.cfg.MaxRooms)
		}
		var err error
		if r, err = s.newRoom(name, kind); err != nil {
			return nil, err
		}
		if kind == KindEcho {
			s.echo[r] = struct{}{}
		} else {
			s.rooms[key] = r
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.legs) >= s.cfg.Mixer.MaxParticipants {
		return nil, fmt.Errorf("imsdemo: room %s: %w", name, mixer.ErrFull)
	}
	r.legs[l] = struct{}{}
	return r, nil
}

// reserveSub finds or creates the room (a conference or a talk group) of a new
// subscriber and adds it.
func (s *Server) reserveSub(name string, kind Kind, sub *subscription) (*room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := roomKey{kind, name}
	r := s.rooms[key]
	if r == nil {
		if len(s.rooms)+len(s.echo) >= s.cfg.MaxRooms {
			return nil, fmt.Errorf("imsdemo: room %s: %w (%d)", name, ErrTooManyRooms, s.cfg.MaxRooms)
		}
		var err error
		if r, err = s.newRoom(name, kind); err != nil {
			return nil, err
		}
		s.rooms[key] = r
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.subs) >= s.cfg.MaxSubscriptions {
		return nil, fmt.Errorf("imsdemo: room %s: %d subscriptions already", name, len(r.subs))
	}
	r.subs[sub] = struct{}{}
	return r, nil
}

// dropRoom removes a room that nobody takes part in or watches any more.
func (s *Server) dropRoom(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	s.dropLocked(r)
}

// dropLocked is dropRoom with s.mu and r.mu held.
func (s *Server) dropLocked(r *room) {
	if r.closed || !r.empty() {
		return
	}
	r.closed = true
	if key := (roomKey{r.kind, r.name}); s.rooms[key] == r {
		delete(s.rooms, key)
	}
	delete(s.echo, r)
	r.sched.Remove(r.mix)
	if r.tg != nil {
		r.tg.close()
	}
	if r.kind != KindEcho {
		r.log.Info("room closed")
	}
}

func (s *Server) addLeg(l *leg) {
	s.mu.Lock()
	s.legs[l.dlg.callID] = l
	s.mu.Unlock()
}

func (s *Server) removeLeg(l *leg) {
	s.mu.Lock()
	if s.legs[l.dlg.callID] == l {
		delete(s.legs, l.dlg.callID)
	}
	s.mu.Unlock()
}

func (s *Server) legByCallID(id string) *leg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.legs[id]
}

func (s *Server) addSub(sub *subscription) {
	s.mu.Lock()
	s.subs[sub.dlg.callID] = sub
	s.mu.Unlock()
}

// removeSub forgets an ended subscription, and its room if that was the last interest.
func (s *Server) removeSub(sub *subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs[sub.dlg.callID] == sub {
		delete(s.subs, sub.dlg.callID)
	}
	r := sub.room
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, sub)
	s.dropLocked(r)
}

func (s *Server) subByCallID(id string) *subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[id]
}

// roomList lists every room, echo sessions included.
func (s *Server) roomList() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*room, 0, len(s.rooms)+len(s.echo))
	for _, r := range s.rooms {
		out = append(out, r)
	}
	for r := range s.echo {
		out = append(out, r)
	}
	return out
}

// Stats is a snapshot of the server for health checks and logs.
type Stats struct {
	Draining      bool                   `json:"draining"`
	Rooms         int                    `json:"rooms"`
	TalkGroups    int                    `json:"talk_groups"`
	EchoSessions  int                    `json:"echo_sessions"`
	Participants  int                    `json:"participants"`
	Subscriptions int                    `json:"subscriptions"`
	Mixing        []mixer.SchedulerStats `json:"mixing"`
}

// Stats returns the server's current figures.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Draining: s.draining.Load(), Rooms: len(s.rooms), EchoSessions: len(s.echo),
		Participants: len(s.legs), Subscriptions: len(s.subs)}
	for k := range s.rooms {
		if k.kind == KindTalkGroup {
			st.TalkGroups++
		}
	}
	s.mu.Unlock()
	for _, sc := range s.scheds {
		st.Mixing = append(st.Mixing, sc.Stats())
	}
	return st
}

// HealthHandler serves /healthz: 200 with the Stats as JSON while serving, 503 while
// draining (a load balancer stops sending newcomers).
func (s *Server) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := s.Stats()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if st.Draining {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	})
}
