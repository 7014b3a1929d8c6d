package topology

// What cannot run without Docker, and what stands in for it. Everything else comes from
// docker-compose.yml as Compose itself reads it: services, addresses, environment,
// commands, healthchecks, dependency conditions, volumes and published ports.
//
//	compose / Docker                        here
//	--------------------------------------  ------------------------------------------------
//	a container's network                   a network namespace, a veth pair into a bridge,
//	                                        the compose file's address; the inner end is
//	                                        named eth0 (or interface_name) as in Docker
//	service names (Docker's DNS)            /etc/netns/<ns>/hosts, mounted by ip netns exec
//	an image's files (COPY in the last      a private root folder per service; paths of the
//	stage of its Dockerfile)                image in commands and healthchecks are rewritten
//	                                        into it, so a command that edits its config
//	                                        (the sip service's sed) edits its own copy
//	an image built from a Go build stage    go build ./cmd/<name> for /usr/local/bin/<name>
//	an image's programs (apt-get in the     this machine's Debian packages (table below)
//	Dockerfile, or a pulled image)
//	volumes (bind)                          the source path itself, in place of the target
//	ports: publishing, TCP                  a forwarder on a loopback address of the run
//	                                        (127.A.B.1, a secure context for Chromium) to
//	                                        the service's address, as docker-proxy does
//	ports: publishing, UDP                  none: peers in the host namespace reach the
//	                                        service's address directly, as on a Linux
//	                                        Docker host (the bridge is routed)
//	the user an image runs as               root (the test's user)
//	healthcheck interval                    polled every healthPoll until healthy

// image is how one image runs on this machine without Docker.
type image struct {
	// entrypoint and cmd are the image's ENTRYPOINT and CMD for pulled images (built
	// images take theirs from their Dockerfile). A service's entrypoint: and command:
	// replace them as Docker does.
	entrypoint, cmd []string
	// workdir and env are the image's WORKDIR and ENV, for pulled images.
	workdir string
	env     map[string]string
	// goCmds, if set, is the image folder holding the repository's commands, built in a
	// build stage: <goCmds>/<name> is `go build ./cmd/<name>`.
	goCmds string
	// private are image folders that also exist on this machine and that the image's
	// programs write to (a pid file under /run): they map to the service's private root.
	private []string
	// appendArgs are added to a program's arguments when the service runs it: defaults the
	// image's build changes in the program, which this machine's package does not.
	appendArgs map[string][]string
	// packages are the Debian packages that provide the image's programs (.ci/run
	// installs them); a missing program's error names them.
	packages []string
}

// images maps an image to how it runs here. Built images are keyed by their Dockerfile
// (relative to the compose file), pulled ones by their repository name without tag.
// A new service needs a row here only if it uses an image not yet listed.
var images = map[string]image{
	// The gateway image: the Go commands, and curl for the healthcheck.
	"Dockerfile": {goCmds: "/usr/local/bin", packages: []string{"curl"}},
	// The SIP side: Kamailio (kamcmd for the healthcheck) and baresip from Debian; its
	// config files come from the Dockerfile's COPY lines.
	"deploy/Dockerfile.sip": {cmd: []string{"bash"}, packages: []string{"kamailio", "baresip"}},
	// The official Redis image builds redis-server with protected mode off (a container
	// is reached over its network, never from the open internet by default).
	"redis": {
		cmd: []string{"redis-server"}, workdir: "/data",
		appendArgs: map[string][]string{"redis-server": {"--protected-mode", "no"}},
		packages:   []string{"redis-server", "redis-tools"},
	},
	// The official nginx image starts `nginx -g 'daemon off;'`; Debian's nginx-light has
	// the same compiled-in config and pid paths, written out here so that they map to the
	// service's private root and volumes like any image path.
	"nginx": {
		cmd:      []string{"nginx", "-c", "/etc/nginx/nginx.conf", "-g", "daemon off; pid /run/nginx.pid;"},
		private:  []string{"/run"},
		packages: []string{"nginx-light", "curl"},
	},
}
