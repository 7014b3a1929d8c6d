package main

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"dsmgw/internal/gateway"
)

// summary prints where everything runs and how to see that it works.
func (s *stack) summary(cfg gateway.Config) {
	w := s.o.out
	page := "http://" + s.app.Addr().String() + "/"
	_, rport, _ := net.SplitHostPort(s.redis.Addr)
	fmt.Fprintln(w, "devstack: ready")
	if s.o.sip {
		fmt.Fprintf(w, "  page        %s  open it and call sip:bob@%s: the page shows \"connected\" and plays a 440 Hz tone\n", page, sipDomain)
		fmt.Fprintf(w, "              (also sip:echo@%s, or a room sip:<name>@%s)\n", sipDomain, confDomain)
	} else {
		fmt.Fprintf(w, "  page        %s  (no SIP side: -sip=false)\n", page)
	}
	fmt.Fprintf(w, "  gateway     HTTP %s (%s/readyz says \"ready\"), SIP %s\n", s.app.Addr(), strings.TrimSuffix(page, "/"),
		strings.Join(slices.Compact([]string{cfg.SIPListenUDP, cfg.SIPListenTCP}), " "))
	fmt.Fprintf(w, "  redis       %s  (redis-cli -p %s)\n", s.redis.Addr, rport)
	if s.o.sip {
		fmt.Fprintf(w, "  CSCF        Kamailio on %s udp/tcp  (kamcmd -s %s ul.dump lists registrations)\n", s.o.cscf, s.ctl)
		fmt.Fprintf(w, "  bob         baresip on %s, registered: %s\n", s.o.phone, s.bob)
		fmt.Fprintf(w, "  conference  imsdemo on %s udp/tcp, rooms sip:<name>@%s\n", s.o.conf, confDomain)
	}
	var logs []string
	if ents, err := os.ReadDir(s.dir); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".log") {
				logs = append(logs, e.Name())
			}
		}
	}
	fmt.Fprintf(w, "  logs        %s: %s (kept after exit)\n", s.dir, strings.Join(logs, " "))
	fmt.Fprintln(w, "Ctrl-C stops everything at once; SIGTERM first ends calls cleanly.")
}
