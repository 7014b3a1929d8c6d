// Package gwchild runs a gateway in a child process for the SIP load tools (cmd/sipflood,
// cmd/sipfuzz): the tool's own binary, started again in a hidden serve mode, builds the
// gateway from the environment exactly as cmd/gateway does. A child process is what the
// tools measure (its CPU, its resident memory, whether it crashed), built as the tool
// was (without -race under go run), and apart from the tool's own load.
package gwchild

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
)

// serveArg, as the first argument, makes the binary a gateway (MaybeServe).
const serveArg = "-gwchild-serve"

// readyTimeout bounds a child's start: building the gateway and the first read of every
// feed shard take milliseconds; 30 s covers a machine busy with other work.
const readyTimeout = 30 * time.Second

// MaybeServe turns the process into a gateway when it was started by Start, and exits
// when the gateway stops; otherwise it returns at once. Call it first in main.
func MaybeServe() {
	if len(os.Args) < 2 || os.Args[1] != serveArg {
		return
	}
	if err := serve(); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve runs the gateway of the environment (as cmd/gateway: SIGTERM drains, SIGINT
// stops), printing its HTTP address and READY once it is ready. On SIGUSR1 it returns
// the memory it freed to the OS at once (a tool's "after a forced GC" reading, beside
// the one the runtime's own pace gives).
func serve() error {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
		}
	}()
	cfg, err := gateway.LoadConfig()
	if err != nil {
		return err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	hard, stopHard := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stopHard()
	soft, stopSoft := signal.NotifyContext(hard, syscall.SIGTERM)
	defer stopSoft()
	app, err := gateway.Build(hard, cfg, log)
	if err != nil {
		return err
	}
	return app.RunReady(soft, hard, func() {
		fmt.Println(app.Addr().String())
		fmt.Println("READY")
	})
}

// Start runs the current binary as a gateway configured by env (KEY=value, added to this
// process's environment), its log in logPath, and returns it with its HTTP address once
// it is ready. The kernel kills the child if the tool dies.
func Start(ctx context.Context, name string, env []string, logPath string) (*proc.Child, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("gwchild: own executable: %w", err)
	}
	cmd := exec.Command(exe, serveArg)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", fmt.Errorf("gwchild: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("gwchild: %w", err)
	}
	c, err := proc.Start(name, cmd, proc.Options{Pdeathsig: syscall.SIGKILL})
	if err != nil {
		return nil, "", err
	}
	type head struct {
		addr string
		err  error
	}
	got := make(chan head, 1)
	go func() {
		sc := bufio.NewScanner(out)
		addr := ""
		for sc.Scan() {
			if sc.Text() == "READY" {
				got <- head{addr: addr}
				_, _ = io.Copy(io.Discard, out)
				return
			}
			addr = sc.Text()
		}
		got <- head{err: fmt.Errorf("gwchild: %s ended before it was ready (log: %s)", name, logPath)}
	}()
	select {
	case h := <-got:
		if h.err != nil {
			c.Stop()
			return nil, "", h.err
		}
		return c, h.addr, nil
	case <-time.After(readyTimeout):
		c.Stop()
		return nil, "", fmt.Errorf("gwchild: %s not ready after %s (log: %s)", name, readyTimeout, logPath)
	case <-ctx.Done():
		c.Stop()
		return nil, "", ctx.Err()
	}
}

// Metrics scrapes the gateway's /metrics at httpAddr: every sample by its name with its
// labels as written ("go_goroutines", `asadapter_sip_edge_refused_total{reason="flood"}`),
// and each metric's sum over its labels by its bare name.
func Metrics(ctx context.Context, httpAddr string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("gwchild: /metrics: %w", err)
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		key := l[:i]
		out[key] = v
		if name, _, ok := strings.Cut(key, "{"); ok {
			out[name] += v
		}
	}
	return out, sc.Err()
}
