package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"dsmgw/internal/proc"
)

// floodResult is what the flooding source saw.
type floodResult struct {
	sent, answers int
	elapsed       time.Duration
}

// floodMessage is the i-th request of the flood: INVITEs to the page user and to users
// that do not exist, and REGISTERs, alternating, each a new transaction, all with a
// forged P-Asserted-Identity.
func floodMessage(i int, src, to string) []byte {
	id := strconv.Itoa(i)
	method, ruri := "INVITE", "sip:"+user+"@"+to
	switch i % 4 {
	case 1:
		method, ruri = "REGISTER", "sip:"+sipDomain
	case 2:
		ruri = "sip:scan" + id + "@" + to
	case 3:
		method, ruri = "REGISTER", "sip:"+to
	}
	return []byte(method + " " + ruri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + src + ";branch=z9hG4bK-f" + id + ";rport\r\n" +
		"From: <sip:scanner@" + sipDomain + ">;tag=f" + id + "\r\n" +
		"To: <" + ruri + ">\r\n" +
		"Call-ID: flood-" + id + "@scanner\r\n" +
		"CSeq: 1 " + method + "\r\n" +
		"Contact: <sip:scanner@" + src + ">\r\n" +
		"P-Asserted-Identity: <sip:bank@bank.example>\r\n" +
		"User-Agent: friendly-scanner\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

// flood sends rate requests per second from ip to the gateway for dur, paced every
// millisecond, and counts the answers that come back.
func flood(ctx context.Context, ip, to string, rate int, dur time.Duration) (floodResult, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return floodResult{}, err
	}
	if uc, ok := c.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(4 << 20)
		_ = uc.SetWriteBuffer(4 << 20)
	}
	ra, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		c.Close()
		return floodResult{}, err
	}
	var res floodResult
	var mu sync.Mutex // guards res.answers
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
			mu.Lock()
			res.answers++
			mu.Unlock()
		}
	}()
	src := c.LocalAddr().String()
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for now := start; now.Sub(start) < dur && ctx.Err() == nil; now = <-tick.C {
		due := int(float64(rate) * now.Sub(start).Seconds())
		for ; res.sent < due; res.sent++ {
			if _, err := c.WriteTo(floodMessage(res.sent, src, to), ra); err != nil {
				c.Close()
				<-done
				return res, fmt.Errorf("flood: %w", err)
			}
		}
	}
	res.elapsed = time.Since(start)
	time.Sleep(200 * time.Millisecond) // the last answers' way back
	c.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return res, nil
}

// calls places n calls one after the other from a sipp phone through the CSCF to the page
// user, and returns their set-up times (INVITE to 200, sipp's response time).
func calls(ctx context.Context, s *stack, scenario string, n int, tag string) ([]time.Duration, error) {
	bin, err := exec.LookPath("sipp")
	if err != nil {
		return nil, fmt.Errorf("sipp not installed (apt-get install sip-tester): %w", err)
	}
	dir := filepath.Join(s.dir, "sipp-"+tag)
	// Emptied first: with -keep, an earlier run's statistics files would count too.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	ctl, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-sf", scenario, "-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-cp", strconv.Itoa(ctl), "-m", strconv.Itoa(n), "-l", "1", "-r", "10", "-s", user, "-nostdin",
		"-trace_rtt", "-rtt_freq", "1", "-trace_err", "-buff_size", "4194304", s.kamAddr)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("sipp (%s): %w; see %s\n%s", tag, err, dir, tail(out, 2000))
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv"))
	var times []time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Split(l, ";")
			if len(fields) < 2 {
				continue
			}
			if ms, err := strconv.ParseFloat(fields[1], 64); err == nil {
				times = append(times, time.Duration(ms*float64(time.Millisecond)))
			}
		}
	}
	if len(times) != n {
		return times, fmt.Errorf("sipp (%s): %d set-up times for %d calls (see %s)", tag, len(times), n, dir)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	return times, nil
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
