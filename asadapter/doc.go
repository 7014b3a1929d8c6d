/*
Package asadapter is the gateway's SIP call control (the "AS adapter" of the design): it
reacts to what browsers write in the DSM's player objects, places and answers SIP calls
through the CSCF with emiago/sipgo, drives the media gateway's terminations and writes call
progress, results and the media URL back to the DSM. Calls are claimed by exactly one
gateway instance; their dialog state lives in Redis so another instance can end a call
whose owner died. The users side (registrations and conference subscriptions) is package
asadapter/users; SDP is asadapter/sdp.

This comment walks through the life of a call and names the file of each step.

Nobody sends this package commands. A browser writes fields of its player object in the
DSM (player_state, remote, dtmf ...); every gateway instance hears of the write, one of them
claims the player, and that instance's call goroutine does the SIP work and writes the
results back (mgw_state, progress, sip_status, mgw_url ...).

# An outgoing call

  - dispatch.go: the change feed (or a keyspace event, or the periodic rescan) wakes
    Adapter.onChange; kick queues the player for a worker, whose examine reads it (or takes
    the fields from the feed's change when it sets or deletes each one examine reads,
    playerView) and, when player_state is connecting with a remote and no call is up,
    calls startOutgoing.
  - caller.go: who the call is placed as. A page logged in as a registered user
    (identity.go) calls as that user: From its address of record, P-Preferred-Identity,
    Contact its registered contact, challenges answered with its credentials by the users
    side (sipport.Users); the call is placed by the instance holding the registration
    (bindingOf). Other pages call with the adapter's own identity.
  - call_out_start.go: startOutgoing takes the claim (records.go); prepareOut allocates
    the local termination at the media gateway (mgw.go), builds the dialog (records.go),
    our offer (package sdp) and the INVITE; start writes mgw_state connecting with a fresh
    call_id (a conference id written without a domain goes to ConferenceDomain) and stores
    the dialog record at once. runOut (call_out.go) is the call's goroutine: it sends the
    INVITE.
  - call_out_invite.go: invite runs the INVITE transaction (an inviting): provisional
    responses become progress writes (call_out_progress.go), a 401/407 is answered once
    (reauthenticate), the browser hanging up (not a failure: the call ends disconnected),
    the drain or InviteTimeout send CANCEL; a 2xx is ACKed (confirm).
  - call_out.go: inviteFailed writes a refusal to the player; connectOut gives the media
    gateway the answer's media and writes mgw_url and connected in one commit, the
    confirmed dialog record stored at the same time.
  - call_confirmed.go: confirmed runs the call until the browser writes disconnected or
    failed (BYE), the far end sends BYE, the session timer ends it (call_sessiontimer.go),
    the drain hangs up (drain.go) or the claim is lost; dtmf written by the browser is sent
    (sendDTMF); hold_intent holds or resumes the call with a re-INVITE (call_hold.go);
    every 2 s the termination's counters become media_quality (call_quality.go).
  - call_out_cancel.go: a CANCEL decided lets the player go at once; a goroutine of the
    adapter finishes the INVITE transaction (487, or ACK and BYE for a 200 crossing it).
  - call.go: finish deletes the termination, writes the result, drops the dialog record and
    the claim; end removes the call and waits for its helpers.

# Before anything: the SIP edge

  - edge_hook.go: every read of every listener and connection passes the SIP edge
    (package edge) before sipgo parses it (Adapter.readFilter): from the trust domain (the
    outbound proxy's addresses and what Edge.Trusted adds; or a TLS client certificate
    naming one of Edge.TrustedNames) it passes untouched; from elsewhere identity headers
    are removed, a request of no dialog of ours is answered statelessly (403, or 401 to a
    direct peer with credentials), and per-source buckets answer 503 or drop a flood. No
    transaction, no log line and no Redis read is spent on a refused request.
  - edge_calls.go: call control tells the edge which dialogs are ours (Adapter.Dialog),
    bounds the requests and calls of untrusted sources in progress (admitRequest in
    owned, sip_server.go; openDialog), and decides whom an INVITE may ring (calledUser):
    a user whose registration is live, for a Request-URI of our domain or a contact we
    registered, looked up in the identities the feed keeps (identity.go).

# An incoming call

  - call_in.go: an INVITE for a user registered by the users side (package users) reaches
    Adapter.onInvite, which checks whom it may ring (calledUser, edge_calls.go), finds the
    player of the user's browser (playerOfUser), negotiates the offer and claims the
    player (call_in_claim.go: a claim still held by the user's ending previous call is
    waited for, a call up or ringing is 486 at once); runIn writes the player ringing
    (setupIn, with the caller id of caller.go: P-Asserted-Identity, which only the trust
    domain's messages still carry, else From), waits for the browser (ring) and answers
    with 200 when it writes connecting (answerIn). The call then goes on in
    call_confirmed.go, as above.
  - A call between two users of this instance comes back through the CSCF with the
    caller's Call-ID: both legs live here, told apart by their tags (callsByID, call.go);
    482 is kept for a true merged request (merged, call_in.go).

# The IMS service of a call, and push-to-talk

  - The player's service field (mmtel or poc) chooses what our INVITE carries
    (package icsi: P-Preferred-Service, the ICSI feature tag in Contact, Accept-Contact;
    inviteRequest in call_out.go, dialogContact in caller.go); an unknown service fails
    the call before any SIP (startOutgoing). An incoming INVITE's service comes from
    P-Asserted-Service or its feature tags (icsi.Identify in Adapter.onInvite) into the
    new player's field; a service we do not offer is refused with 488.
  - call_ptt.go: a poc call opens a floor channel (package ptt) before its offer, asks the
    media gateway for a gated termination, takes the floor control server's address from
    the answer and runs the channel once connected (startFloor): the page's floor field
    becomes Floor Request / Floor Release (floorIntent), the floor state goes back to the
    player (publishFloor), the gate follows the floor (setGate), and the page's media
    WebSocket closing releases the floor (floorDetached). finish stops the channel before
    the call's result is written (stopFloor).

# In a dialog, and when an instance dies

  - call_indialog.go: every request in a dialog passes one prologue (inDialog: well-formed,
    a dialog of ours or 481, CSeq order); BYE ends the call, a re-INVITE or UPDATE may
    carry a new offer (modify: hold, resume, a new address).
  - lease.go: a helper of each call follows the renewals of its claim (keepLease); a call
    that cannot renew it in time stops acting before the claim can expire (no SIP, no
    media, no commits for it), so no dialog is ever driven by two instances.
  - lease_renew.go: one loop per instance renews every claim it holds in one pipeline per
    tick (renewLeases) and hands each call the answer to its own claim.
  - pause.go: an idle answered call that stops acting is paused, not fenced: it resumes
    when a renewal finds the claim still ours; only another instance's claim, or a pause
    that no renewal ends within two leases, fences it for good.
  - takeover.go: a player or dialog record left live by an instance whose claim expired is
    ended by another (maybeTakeover): BYE or CANCEL from the stored dialog.
  - takeover_sched.go: at most a few takeovers at once per instance (one while its own
    renewals run late); the rest wait in a queue, so a survivor does not starve itself
    taking over a burst.
  - drain.go: a graceful shutdown: StopTaking (no new call, no takeover), then, once the
    users side handed its registrations over and the calls had their grace (WaitCalls),
    HangupAll ends every call left here.

# Who handles what

Each line names the SIP method or DSM trigger, the function that handles it and its file
(a test checks that each function exists in its file):

	any read, before parsing (the edge)     Adapter.readFilter        edge_hook.go
	a TCP or TLS connection accepted        edgeListener.Accept       edge_hook.go
	a dialog named by a request (the edge)  Adapter.Dialog            edge_calls.go
	any request, before its handler         Adapter.owned             sip_server.go
	any request of an untrusted source      Adapter.admitRequest      edge_calls.go
	whom an initial INVITE may ring         Adapter.calledUser        edge_calls.go
	INVITE, new call                        Adapter.onInvite          call_in.go
	INVITE, in a dialog (re-INVITE)         Adapter.onReInvite        call_indialog.go
	ACK                                     Adapter.onAck             call_indialog.go
	BYE                                     Adapter.onBye             call_indialog.go
	CANCEL (sipgo answers matching ones)    Adapter.onCancel          sip_server.go
	INFO                                    Adapter.onInfo            call_indialog.go
	UPDATE                                  Adapter.onUpdate          call_indialog.go
	OPTIONS                                 Adapter.onOptions         sip_server.go
	NOTIFY and others, mounted by wiring    Adapter.OnRequest         adapter.go
	any method nobody handles (405)         Adapter.onNoRoute         sip_server.go
	a 2xx retransmitted after its INVITE    Adapter.onStrayResponse   call_indialog.go
	responses to our INVITE                 inviting.response         call_out_invite.go
	401/407 to our INVITE                   inviting.reauthenticate   call_out_invite.go
	401/407 to BYE, INFO, re-INVITE         Adapter.do                caller.go
	credentials of a call's identity        Adapter.authorize         caller.go
	P-Asserted-Identity of an INVITE        callerOf                  caller.go
	any DSM change (feed)                   Adapter.onChange          dispatch.go
	keyspace event (a write the feed lost)  Adapter.keyspaceLoop      dispatch.go
	feed lost entries                       Adapter.kickAll           dispatch.go
	every Rescan                            Adapter.rescan            dispatch.go
	player_state connecting, no call        Adapter.startOutgoing     call_out_start.go
	player_state disconnected, ringing out  call.invite               call_out_invite.go
	player_state connecting, ringing in     call.answerIn             call_in.go
	player_state disconnected, ringing in   call.ring                 call_in.go
	player_state disconnected, connected    call.confirmed            call_confirmed.go
	dtmf                                    call.sendDTMF             call_confirmed.go
	hold_intent                             call.holdIntent           call_hold.go
	mgw_url deleted, connected (page back)  call.renewMediaURL        call_media.go
	floor (push-to-talk intent)             call.floorIntent          call_ptt.go
	floor state from the floor server       call.publishFloor         call_ptt.go
	media gateway event ws_detached         call.floorDetached        call_ptt.go
	session timer due                       call.sessionTimerFired    call_sessiontimer.go
	quality tick of a connected call        call.writeQuality         call_quality.go
	users/<user> (calling identity)         Adapter.identityChange    identity.go
	media gateway event (timeout, ...)      Adapter.HandleMediaEvent  mgw.go
	a live player whose owner died          Adapter.maybeTakeover     takeover.go
	claim renewal tick (every claim)        Adapter.renewLeases       lease_renew.go
	claim renewal answer, fencing           call.keepLease            lease.go
	SIGTERM, first step                     Adapter.StopTaking        drain.go
	SIGTERM (graceful drain)                Adapter.HangupAll         drain.go
*/
package asadapter
