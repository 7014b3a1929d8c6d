package floorctl_test

import (
	"fmt"

	"dsmgw/floorctl"
)

// A talk group of two on the demo server's side: a grants, b hears who talks.
func ExampleServer() {
	srv, _ := floorctl.NewServer(floorctl.Config{}, 0xaabbccdd, nil)
	_, _ = srv.Join(floorctl.Member{ID: "a", SSRC: 1, UserID: "sip:a@example.com", Queueing: true})
	_, _ = srv.Join(floorctl.Member{ID: "b", SSRC: 2, UserID: "sip:b@example.com", Queueing: true})

	req := floorctl.Message{Subtype: floorctl.FloorRequest, SSRC: 1}
	wire, _ := req.Marshal() // as it arrives on the floor control port
	out, _ := srv.ReceiveDatagram("a", wire)
	buf := make([]byte, 1500)
	for _, o := range out {
		n, _ := o.Msg.MarshalTo(buf)
		fmt.Printf("to %s: %v (%d bytes)\n", o.To, &o.Msg, n)
	}
	holder, _ := srv.Holder()
	fmt.Println("forward RTP of", holder)
	// Output:
	// to a: Floor Granted ssrc=aabbccdd duration=30s (24 bytes)
	// to b: Floor Taken ssrc=aabbccdd talker="sip:a@example.com" seq=1 (52 bytes)
	// forward RTP of a
}

// The gateway's side: the page presses, the server grants, the view goes to the DSM.
func ExampleParticipant() {
	part, _ := floorctl.NewParticipant(floorctl.Config{}, 1, 0, nil)
	for _, m := range part.Request() {
		fmt.Println("send", &m)
	}
	fmt.Println(part.View().Floor, part.View().Pending, part.MaySend())

	granted := floorctl.Message{Subtype: floorctl.FloorGranted, SSRC: 0xaabbccdd}
	granted.SetDuration(30)
	wire, _ := granted.Marshal()
	_, _ = part.ReceiveDatagram(wire)
	fmt.Println(part.View().Floor, part.View().Pending, part.MaySend())
	// Output:
	// send Floor Request ssrc=00000001
	// idle true false
	// granted false true
}
