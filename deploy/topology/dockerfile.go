package topology

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// dockerfile is what the final stage of a Dockerfile puts into its image and how the
// image starts: the only parts of a build that shape a running service. Packages a RUN
// line installs are not read: the programs come from this machine's Debian packages
// (the mapping table names them).
type dockerfile struct {
	copies     []copyLine // COPY of build-context files, in order
	fromStage  []copyLine // COPY --from=<stage>: built files (the mapping table says how)
	workdir    string
	env        map[string]string
	entrypoint []string
	cmd        []string
}

// copyLine is one source and its destination inside the image.
type copyLine struct{ src, dst string }

// parseDockerfile reads the instructions of a Dockerfile's last stage. It understands
// what the project's Dockerfiles use: line continuations, comments, FROM, COPY (flags
// --from, --chown, --chmod), WORKDIR, ENV, ENTRYPOINT and CMD in exec (JSON) or shell
// form. Other instructions (RUN, USER, EXPOSE, ARG, LABEL) do not change what runs here.
func parseDockerfile(r io.Reader) (*dockerfile, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	var cur strings.Builder
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || (l == "" && cur.Len() == 0) {
			continue
		}
		if rest, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(rest)
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(l)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read Dockerfile: %w", err)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	var d *dockerfile
	for i, l := range lines {
		word, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(word) {
		case "FROM":
			d = &dockerfile{env: map[string]string{}} // a new stage: only the last one counts
		case "COPY", "ADD":
			if d == nil {
				return nil, fmt.Errorf("Dockerfile line %d: %s before FROM", i+1, word)
			}
			c, from, err := parseCopy(rest)
			if err != nil {
				return nil, fmt.Errorf("Dockerfile line %d: %w", i+1, err)
			}
			if from != "" {
				d.fromStage = append(d.fromStage, c...)
			} else {
				d.copies = append(d.copies, c...)
			}
		case "WORKDIR":
			if d != nil {
				d.workdir = rest
			}
		case "ENV":
			if d != nil {
				parseEnv(d.env, rest)
			}
		case "ENTRYPOINT":
			if d != nil {
				d.entrypoint = parseCommand(rest)
				d.cmd = nil // Docker resets CMD when ENTRYPOINT is set
			}
		case "CMD":
			if d != nil {
				d.cmd = parseCommand(rest)
			}
		}
	}
	if d == nil {
		return nil, fmt.Errorf("Dockerfile has no FROM")
	}
	return d, nil
}

// parseCopy splits `[--flag=v ...] src... dst` into copies; a destination ending in "/"
// or several sources make the destination a folder that receives each source by name.
func parseCopy(s string) ([]copyLine, string, error) {
	var from string
	var args []string
	for f := range strings.FieldsSeq(s) {
		if v, ok := strings.CutPrefix(f, "--from="); ok {
			from = v
			continue
		}
		if strings.HasPrefix(f, "--") {
			continue // --chown, --chmod, --link: ownership and layers do not matter here
		}
		args = append(args, f)
	}
	if len(args) < 2 {
		return nil, "", fmt.Errorf("COPY needs a source and a destination: %q", s)
	}
	dst := args[len(args)-1]
	srcs := args[:len(args)-1]
	var out []copyLine
	for _, src := range srcs {
		d := dst
		if len(srcs) > 1 || strings.HasSuffix(dst, "/") {
			d = strings.TrimSuffix(dst, "/") + "/" + lastElem(src)
		}
		out = append(out, copyLine{src: src, dst: d})
	}
	return out, from, nil
}

func lastElem(p string) string {
	p = strings.TrimSuffix(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// parseCommand reads the exec form (a JSON array) or the shell form (run by /bin/sh -c).
func parseCommand(s string) []string {
	var argv []string
	if strings.HasPrefix(s, "[") && json.Unmarshal([]byte(s), &argv) == nil {
		return argv
	}
	return []string{"/bin/sh", "-c", s}
}

// parseEnv reads `ENV k=v k2="v 2"` or the legacy `ENV k v`.
func parseEnv(env map[string]string, s string) {
	if !strings.Contains(strings.SplitN(s, " ", 2)[0], "=") {
		k, v, _ := strings.Cut(s, " ")
		env[k] = strings.TrimSpace(v)
		return
	}
	for _, kv := range splitQuoted(s) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
}

// splitQuoted splits on spaces outside double quotes and drops the quotes.
func splitQuoted(s string) []string {
	var out []string
	var b strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if b.Len() > 0 {
				out = append(out, b.String())
				b.Reset()
			}
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}
