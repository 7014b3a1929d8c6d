package main

import (
	"context"
	"fmt"
	"net"

	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// sipDirect places calls from a bare sipgo UAC straight to the sipp UAS at rate for
// dur (INVITE with the same kind of SDP offer, 200, ACK, BYE) and measures INVITE sent
// → 200 received with microsecond resolution (sipp's own response times are whole
// milliseconds). It is the SIP exchange without the DSM, the media gateway and the
// adapter: the baseline the adapter's post-dial delay is compared with.
func sipDirect(ctx context.Context, uas string, rate int, dur time.Duration) (result, error) {
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("callbench"))
	if err != nil {
		return result{}, err
	}
	defer ua.Close()
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		return result{}, err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	defer pc.Close()
	go func() { _ = srv.ServeUDP(pc) }()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	cli, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port),
		sipgo.WithClientConnectionAddr(pc.LocalAddr().String()))
	if err != nil {
		return result{}, err
	}
	var target sip.Uri
	if err := sip.ParseUri("sip:service@"+uas, &target); err != nil {
		return result{}, err
	}
	sdp := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
	total := int(float64(rate) * dur.Seconds())
	var mu sync.Mutex
	var rtts []time.Duration
	failed := 0
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; i < total && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := directCall(ctx, cli, target, sdp)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			rtts = append(rtts, rtt)
		}()
	}
	wg.Wait()
	r := result{calls: total, failed: failed, rate: float64(len(rtts)) / time.Since(start).Seconds()}
	r.p50, r.p99 = percentiles(rtts)
	return r, nil
}

func directCall(ctx context.Context, cli *sipgo.Client, target sip.Uri, sdp []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	inv := sip.NewRequest(sip.INVITE, target)
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.SetBody(sdp)
	t0 := time.Now()
	tx, err := cli.TransactionRequest(ctx, inv)
	if err != nil {
		return 0, err
	}
	defer tx.Terminate()
	for {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tx.Done():
			return 0, fmt.Errorf("INVITE: %v", tx.Err())
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			rtt := time.Since(t0)
			if !res.IsSuccess() {
				return 0, fmt.Errorf("INVITE: %d", res.StatusCode)
			}
			to := res.To()
			ack := sip.NewRequest(sip.ACK, target)
			for _, h := range []sip.Header{inv.From(), to, inv.CallID(), &sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.ACK}} {
				ack.AppendHeader(h)
			}
			if err := cli.WriteRequest(ack); err != nil {
				return 0, err
			}
			bye := sip.NewRequest(sip.BYE, target)
			for _, h := range []sip.Header{inv.From(), to, inv.CallID(), &sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo + 1, MethodName: sip.BYE}} {
				bye.AppendHeader(h)
			}
			if _, err := cli.Do(ctx, bye); err != nil {
				return 0, fmt.Errorf("BYE: %w", err)
			}
			return rtt, nil
		}
	}
}
