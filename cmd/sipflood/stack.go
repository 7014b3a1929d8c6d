package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter/users"
	"dsmgw/internal/gwchild"
	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
	"dsmgw/store"
)

// The stack of a flood run: a private redis-server, Kamailio as the CSCF (the demo's
// deploy/kamailio.cfg), one gateway in a child process whose outbound proxy (and so its
// trust domain) is Kamailio, and a page user the gateway registered at Kamailio with its
// contact (through its registration API). The tool plays the page: it answers the user's
// calls in the DSM.

// Names of the run.
const (
	user       = "alice"
	pageClient = "floodpage"
	sipDomain  = "sip.dsmgw.test"
	// usersSecret is the gateway's registration API secret (USERS_SECRET).
	usersSecret = "sipflood-secret-0123456789"
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
		"INSTANCE=flooded", "MGW_SECRET=sipflood-secret-0123456789", "USERS_SECRET=" + usersSecret,
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

// register makes alice a page user as a page's sign-in does: through the gateway's
// registration API, with the page's client key and a session that outlasts the run; the
// users side REGISTERs her at Kamailio with the gateway's contact and writes users/alice.
// It returns once she is registered.
func (s *stack) register(ctx context.Context) error {
	body, err := json.Marshal(users.RegisterRequest{SIPURI: "sip:" + user + "@" + sipDomain, Client: pageClient,
		Display: "Alice", TTLSeconds: 3600})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.gwHTTP+"/v1/users/"+user+"/register",
		bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+usersSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("register the page user: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return fmt.Errorf("register the page user: %s", res.Status)
	}
	reg := s.st.Schema().Users.Fields.Registration
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		snap, err := s.st.Snapshot(ctx, s.st.Schema().UserAddress(user))
		if err == nil && snap.Fields[reg] == "registered" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the page user is not registered (%v, %v): see %s", snap.Fields, err, s.gwLog)
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
