// Package topology runs the services of docker-compose.yml on a machine without Docker,
// for tests of the deployment a user runs: each service in a network namespace of its
// own, plugged into a private bridge with the compose file's address, with the compose
// file's environment, command, healthcheck, dependency conditions, volumes and published
// ports. The file is read with compose-go, the library Docker Compose uses, so it is
// validated against the compose specification and a change to it is a change to what
// the tests run.
//
// Only what cannot run without Docker is mapped; mapping.go holds that table. Every run
// draws a subnet of its own (10.A.B.0/24, given to the compose file as ${DSMGW_NET}) and
// publishes TCP ports on 127.A.B.1 (${DSMGW_PUBLIC_HOST}), so runs in parallel and
// leftovers of a killed run never collide. The test's cleanup stops every process by
// PID and deletes the namespaces, links and /etc/netns folders the run created.
//
// The package's own tests run in a network namespace started for them (main_test.go):
// the bridge, veths and links they make and cut are then no change of the machine's
// network, which browsers of other tests running at the same time would take for a
// network change (ERR_NETWORK_CHANGED).
//
// A run killed before its cleanup (a go test -timeout panic) leaves its bridge
// dsmgw<id> (unless it ran in the tests' namespace, which takes it along), its namespaces dsmgw<id>-<service> and their /etc/netns folders behind; the
// servers die with the test binary (Pdeathsig), except what a service's shell started in
// the background (the sip service's Kamailio): `ip netns pids <ns>` lists it.
//
// It needs root, iproute2 and the Debian packages of the images' programs (mapping.go;
// .ci/run installs them).
package topology
