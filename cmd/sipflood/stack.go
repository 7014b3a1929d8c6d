package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/gwchild"
	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
	"dsmgw/store"
)

// The stack of a flood run: a private redis-server, Kamailio as the CSCF (the demo's
// deploy/kamailio.cfg), one gateway in a child process whose outbound proxy (and so its
// trust domain) is Kamailio, and a page user registered at Kamailio with the gateway's
// contact. The tool plays the page: it answers the user's calls in the DSM.

// Names of the run.
const (
	user       = "alice"
	pageClient = "floodpage"
	sipDomain  = "sip.dsmgw.test"
)

// childOpts are the options of the run's children: the kernel kills them if the tool dies.
func childOpts(logFile string) proc.Options {
	return proc.Options{Pdeathsig: syscall.SIGKILL, LogFile: logFile}
}

// stack is the running stack.
type stack struct {
	dir     string
	redis   *redisrun.Server
	kam     *proc.Child
	kamAddr string // Kamailio's SIP address
	gw      *proc.Child
	gwHTTP  string // the gateway's HTTP address (metrics)
	gwSIP   string // the gateway's SIP address
	gwLog   string
	rdb     *redis.Client
	st      *store.Store
	player  string
}

// startStack starts everything; stop ends it.
func startStack(ctx context.Context, root, dir string) (*stack, error) {
	s := &stack{dir: dir}
	var err error
	if s.redis, err = redisrun.Start(ctx, redisrun.Options{Dir: dir, Proc: childOpts("")}); err != nil {
		return s, err
	}
	if err := s.startKamailio(ctx, root); err != nil {
		return s, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return s, err
	}
	s.gwSIP = "127.0.0.1:" + strconv.Itoa(port)
	env := []string{"GATEWAY_ROLES=asadapter,mediagw", "HTTP_ADDR=127.0.0.1:0", "REDIS_ADDRS=" + s.redis.Addr,
		"INSTANCE=flooded", "MGW_SECRET=sipflood-secret-0123456789", "USERS_SECRET=sipflood-secret-0123456789",
		"SIP_LISTEN_UDP=" + s.gwSIP, "SIP_LISTEN_TCP=" + s.gwSIP, "SIP_DOMAIN=" + sipDomain,
		"SIP_OUTBOUND_PROXY=sip:" + s.kamAddr, "LOG_LEVEL=info", "MGW_PORT_MIN=41000", "MGW_PORT_MAX=41099"}
	s.gwLog = filepath.Join(dir, "gateway.log")
	if s.gw, s.gwHTTP, err = gwchild.Start(ctx, "gateway", env, s.gwLog); err != nil {
		return s, err
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: s.redis.Addr})
	if s.st, err = store.New(store.Config{}, s.rdb, slog.New(slog.DiscardHandler)); err != nil {
		return s, err
	}
	s.player = s.st.Schema().PlayerAddress(pageClient, "audio")
	if err := s.register(ctx); err != nil {
		return s, err
	}
	return s, nil
}

func (s *stack) stop() {
	if s.gw != nil {
		s.gw.Stop()
	}
	if s.kam != nil {
		s.kam.Stop()
	}
	if s.rdb != nil {
		s.rdb.Close()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
}

// startKamailio runs deploy/kamailio.cfg on a free port, its runtime files in the run's
// folder.
func (s *stack) startKamailio(ctx context.Context, root string) error {
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		return fmt.Errorf("kamailio not installed (apt-get install kamailio): %w", err)
	}
	cfg := filepath.Join(root, "deploy", "kamailio.cfg")
	if _, err := os.Stat(cfg); err != nil {
		return fmt.Errorf("run sipflood from the module root (-root): %w", err)
	}
	port, c, err := proc.StartListening(ctx, "kamailio", proc.FreePort, func(port int) (*exec.Cmd, proc.Options, error) {
		run := filepath.Join(s.dir, "kamailio-"+strconv.Itoa(port))
		if err := os.MkdirAll(run, 0o755); err != nil {
			return nil, proc.Options{}, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(bin, "-DD", "-E", "-f", cfg, "-Y", run, "-P", filepath.Join(run, "kamailio.pid"),
			"-m", "64", "-M", "8", "-l", "udp:"+addr, "-l", "tcp:"+addr,
			"-A", `CTL_ADDR="unix:`+filepath.Join(run, "ctl.sock")+`"`, "-A", `CONF_SERVER="sip:127.0.0.1:9"`)
		return cmd, childOpts(filepath.Join(run, "kamailio.log")), nil
	}, 15*time.Second)
	if err != nil {
		return err
	}
	s.kam, s.kamAddr = c, "127.0.0.1:"+strconv.Itoa(port)
	return nil
}

// register makes alice a page user: registered at Kamailio with the gateway's contact
// (the REGISTER the users side would send), and in the DSM as the users side writes her,
// logged in from the page's client.
func (s *stack) register(ctx context.Context) error {
	contact := "sip:" + user + "@" + s.gwSIP
	msg := "REGISTER sip:" + sipDomain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-sipflood-reg;rport\r\n" +
		"From: <sip:" + user + "@" + sipDomain + ">;tag=reg\r\n" +
		"To: <sip:" + user + "@" + sipDomain + ">\r\n" +
		"Call-ID: sipflood-reg\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <" + contact + ">\r\nExpires: 3600\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	status, err := request(s.kamAddr, msg)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(status, "SIP/2.0 200") {
		return fmt.Errorf("REGISTER at Kamailio: %s", status)
	}
	f := s.st.Schema().Users.Fields
	for _, c := range []store.Commit{
		{Obj: s.st.Schema().Users.Index, Base: -1, Ops: []store.Op{store.Set(user, "Alice")}},
		{Obj: s.st.Schema().UserAddress(user), Base: -1, Ops: []store.Op{store.Set(f.Client, pageClient),
			store.Set(f.SipURI, "sip:"+user+"@"+sipDomain), store.Set(f.Registration, "registered")}},
	} {
		if _, err := s.st.Commit(ctx, c); err != nil {
			return fmt.Errorf("write the page user: %w", err)
		}
	}
	return nil
}

// request sends one request over UDP from 127.0.0.1 (LOCAL in msg is the socket's
// address) and returns the status line of its final response.
func request(to, msg string) (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	ra, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return "", err
	}
	if _, err := c.WriteTo([]byte(strings.ReplaceAll(msg, "LOCAL", c.LocalAddr().String())), ra); err != nil {
		return "", err
	}
	buf := make([]byte, 8192)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return "", fmt.Errorf("no answer from %s: %w", to, err)
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line, nil
		}
	}
}

// page answers the page user's calls as the browser does: when the player rings, it
// writes connecting. It follows the player through a change feed of its own (its blocking
// reads are the only Redis commands it adds while nothing changes) until ctx ends.
func (s *stack) page(ctx context.Context) error {
	feed := store.NewFeed(store.FeedConfig{}, s.st, slog.New(slog.DiscardHandler))
	wake := make(chan struct{}, 1)
	cancel := feed.Subscribe(func(c store.Change) {
		if c.Obj == s.player {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- feed.Run(ctx) }()
	defer func() { <-done }()
	seq := int64(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
		snap, err := s.st.Snapshot(ctx, s.player)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("page: %w", err)
		}
		if snap.Fields["player_state"] != "ringing" {
			continue
		}
		seq++
		_, err = s.st.Commit(ctx, store.Commit{Obj: s.player, Client: "browser/" + pageClient, Seq: seq, Base: -1,
			Ops: []store.Op{store.Set("player_state", "connecting")}})
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("page: answer: %w", err)
		}
	}
}
