package testpeer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BaresipOptions configures a baresip phone.
type BaresipOptions struct {
	// User is the SIP user the phone registers as at Registrar (required).
	User string
	// Password is its digest password (default KamailioPassword).
	Password string
	// Registrar is the registrar and outbound proxy, "host:port" (required).
	Registrar string
	// ToneHz is the sine tone the phone sends (default 440).
	ToneHz int
}

// Baresip is a running baresip phone: registered, auto-answering, sending a sine tone
// and recording what it receives to WAV files in Dir.
type Baresip struct {
	Dir     string
	SIPAddr string // its own SIP listen address
	Ctrl    string // ctrl_tcp address
	PID     int
}

// StartBaresip starts baresip with a private configuration directory: its SIP account
// registers through the registrar with auto-answer, audio is a sine tone in and
// received audio out to sndfile WAVs (no sound card needed), and ctrl_tcp takes
// commands. It waits until the control port answers.
func StartBaresip(t testing.TB, opts BaresipOptions) *Baresip {
	t.Helper()
	bin := Need(t, "baresip")
	if opts.Password == "" {
		opts.Password = KamailioPassword
	}
	if opts.ToneHz == 0 {
		opts.ToneHz = 440
	}
	dir := t.TempDir()
	sipPort, ctrlPort := freePortPair(t), FreePort(t)
	rtpBase := 40000 + 2*(sipPort%5000)
	conf := fmt.Sprintf(`poll_method		epoll
sip_listen		127.0.0.1:%d
net_interface		127.0.0.1
audio_player		aubridge,x
audio_alert		aubridge,x
audio_source		ausine,%d
ausrc_srate		48000
ausrc_channels		2
rtp_ports		%d-%d
rtp_timeout		0
snd_path		%s
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aubridge.so
module			sndfile.so
module_app		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:%d
`, sipPort, opts.ToneHz, rtpBase, rtpBase+40, dir, ctrlPort)
	accounts := fmt.Sprintf("<sip:%s@%s>;auth_pass=%s;outbound=\"sip:%s\";regint=300;answermode=auto;audio_codecs=PCMU\n",
		opts.User, opts.Registrar, opts.Password, opts.Registrar)
	for name, body := range map[string]string{"config": conf, "accounts": accounts, "contacts": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatalf("testpeer: baresip %s: %v", name, err)
		}
	}
	cmd := exec.Command(bin, "-f", dir, "-n", "127.0.0.1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir)
	StartProcess(t, "baresip-"+opts.User, cmd)
	b := &Baresip{Dir: dir, SIPAddr: "127.0.0.1:" + strconv.Itoa(sipPort),
		Ctrl: "127.0.0.1:" + strconv.Itoa(ctrlPort), PID: cmd.Process.Pid}
	WaitTCP(t, b.Ctrl, 15*time.Second)
	return b
}

// Command sends one ctrl_tcp command (netstring JSON) and returns the response's data.
func (b *Baresip) Command(command, params string) (string, error) {
	c, err := net.DialTimeout("tcp", b.Ctrl, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	msg, _ := json.Marshal(map[string]string{"command": command, "params": params, "token": "t"})
	if _, err := fmt.Fprintf(c, "%d:%s,", len(msg), msg); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	for {
		n, err := r.ReadString(':')
		if err != nil {
			return "", err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(n, ":")))
		if err != nil {
			return "", fmt.Errorf("testpeer: baresip netstring length %q", n)
		}
		buf := make([]byte, size+1)
		if _, err := ioReadFull(r, buf); err != nil {
			return "", err
		}
		var resp struct {
			Response bool   `json:"response"`
			OK       bool   `json:"ok"`
			Data     string `json:"data"`
		}
		if json.Unmarshal(buf[:size], &resp) == nil && resp.Response {
			if !resp.OK {
				return resp.Data, fmt.Errorf("testpeer: baresip %s: %s", command, resp.Data)
			}
			return resp.Data, nil
		}
		// An event, not our response: keep reading.
	}
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// freePortPair returns a port p free on UDP and TCP with p+1 free on TCP: baresip binds
// SIP over TLS on the port after its SIP port.
func freePortPair(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		p := FreeUDPPort(t)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatalf("testpeer: no free port pair for baresip")
	return 0
}
