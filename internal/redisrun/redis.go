// Package redisrun starts private Redis for tests, load generators and the development
// stack: one redis-server, or a 3-master Redis Cluster, on free loopback ports, without
// persistence, stopped by PID. It takes a context rather than a testing.TB so that the
// command-line tools use it too; internal/testpeer wraps it for tests.
package redisrun

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/proc"
)

// startTimeout bounds the wait for one redis-server to accept connections and answer
// PING: a fresh server does within milliseconds; 10 s covers a loaded machine.
const startTimeout = 10 * time.Second

// Options tune a redis-server. The zero value is a plain server with keyspace
// notifications off, its files in a temporary directory, stopped with proc's default
// grace and left running if the starting process dies.
type Options struct {
	// NotifyKeyspaceEvents is passed as notify-keyspace-events ("" leaves them off, as a
	// managed Redis might; the gateway turns them on itself unless CONFIG is denied).
	NotifyKeyspaceEvents string
	// DenyConfig renames CONFIG away, as managed Redis services do.
	DenyConfig bool
	// MaxClients is passed as maxclients when not zero.
	MaxClients int
	// Dir holds the server's files and its log; "" makes a temporary directory that Stop
	// removes.
	Dir string
	// Proc tunes the child process (Pdeathsig: tests and tools that may die without
	// cleaning up take the server with them). Its LogFile is set by Start.
	Proc proc.Options

	cluster bool // set by StartCluster
}

// Server is a running private redis-server.
type Server struct {
	// Addr is "127.0.0.1:<port>".
	Addr    string
	child   *proc.Child
	dir     string
	ownDir  bool   // dir was made by Start: Stop removes it
	logPath string // the server's output
}

// Start starts a redis-server on a free loopback port and returns once it answers PING.
// A port taken by another process before the server could bind it is retried on another
// (proc.StartListening). ctx bounds the start only; the server runs until Stop.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not installed (apt-get install redis-server): %w", err)
	}
	s := &Server{dir: o.Dir}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "dsmgw-redis-"); err != nil {
			return nil, fmt.Errorf("redis-server: %w", err)
		}
		s.ownDir = true
	}
	port, child, err := proc.StartListening(ctx, "redis-server", proc.FreePort, func(port int) (*exec.Cmd, proc.Options, error) {
		po := o.Proc
		s.logPath = filepath.Join(s.dir, "redis-"+strconv.Itoa(port)+".log")
		po.LogFile = s.logPath
		a := args(o, s.dir, port)
		if o.cluster {
			// The cluster bus defaults to port+10000, past 65535 for a port drawn above
			// the ephemeral range (and possibly taken): give it a free port of its own.
			bus, err := proc.FreePort()
			if err != nil {
				return nil, po, fmt.Errorf("redis-server cluster bus: %w", err)
			}
			a = append(a, "--cluster-port", strconv.Itoa(bus))
		}
		return exec.Command(bin, a...), po, nil
	}, startTimeout)
	if err != nil {
		s.removeDir()
		return nil, err
	}
	s.child, s.Addr = child, "127.0.0.1:"+strconv.Itoa(port)
	if err := waitPing(ctx, s.Addr); err != nil {
		s.Stop()
		return nil, fmt.Errorf("redis-server on %s: %w", s.Addr, err)
	}
	return s, nil
}

// args is the command line of a server on port with its files in dir.
func args(o Options, dir string, port int) []string {
	a := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no",
		"--notify-keyspace-events", o.NotifyKeyspaceEvents,
		"--daemonize", "no", "--loglevel", "warning",
	}
	if o.MaxClients > 0 {
		a = append(a, "--maxclients", strconv.Itoa(o.MaxClients))
	}
	if o.DenyConfig {
		a = append(a, "--rename-command", "CONFIG", "")
	}
	if o.cluster {
		// A short node timeout: the cluster is on loopback and tests may fail a node.
		a = append(a, "--cluster-enabled", "yes", "--cluster-config-file",
			filepath.Join(dir, "nodes-"+strconv.Itoa(port)+".conf"), "--cluster-node-timeout", "2000")
	}
	return a
}

// waitPing waits until addr answers PING.
func waitPing(ctx context.Context, addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no PONG: %w", errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// PID returns the server's process ID (for /proc figures).
func (s *Server) PID() int { return s.child.PID() }

// LogPath returns the file holding the server's output.
func (s *Server) LogPath() string { return s.logPath }

// Done is closed once the server has exited.
func (s *Server) Done() <-chan struct{} { return s.child.Done() }

// Stop stops the server by PID (proc.Child.Stop) and removes its directory if Start made
// it. It is safe to call twice.
func (s *Server) Stop() {
	if s.child != nil {
		s.child.Stop()
	}
	s.removeDir()
}

func (s *Server) removeDir() {
	if s.ownDir {
		_ = os.RemoveAll(s.dir)
	}
}
