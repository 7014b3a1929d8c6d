package topology

import (
	"cmp"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// pathMap maps one path inside a service's image to a path on this machine.
type pathMap struct{ image, host string }

// root is a service's private stand-in for its image's file system: the image's files
// (COPY lines, built programs, volumes) and folders its programs write to.
type root struct {
	dir  string
	maps []pathMap // longest image path first, so /a/b is rewritten before /a
}

// imagePath returns where an image path lives in the root.
func (r *root) imagePath(p string) string { return filepath.Join(r.dir, p) }

// resolve returns where an image path lives here: under the mapping of its longest
// mapped parent (a volume, a copied folder), else in the root.
func (r *root) resolve(p string) string {
	p = filepath.Clean(p)
	for _, m := range r.maps {
		if p == m.image {
			return m.host
		}
		if rest, ok := strings.CutPrefix(p, m.image+"/"); ok {
			return filepath.Join(m.host, rest)
		}
	}
	return r.imagePath(p)
}

// add maps image path p to host path h. A later mapping of the same path wins: a volume
// mounted over a folder the image has (its COPY) hides the image's files, as in Docker.
func (r *root) add(p, h string) {
	r.maps = append([]pathMap{{image: filepath.Clean(p), host: h}}, r.maps...)
	slices.SortStableFunc(r.maps, func(a, b pathMap) int { return cmp.Compare(len(b.image), len(a.image)) })
}

// makeRoot lays out a service's root in dir: the build's COPY sources copied in, bind
// volumes mapped to their sources, named volumes and tmpfs as empty folders, the image's
// private folders, and HOME. Commands of the repository the image is built with are
// built by build(name) and mapped to where the image has them.
func makeRoot(dir string, pl *plan, build func(name string) (string, error)) (*root, error) {
	r := &root{dir: dir}
	if pl.docker != nil {
		for _, c := range pl.docker.copies {
			src := filepath.Join(pl.context, c.src)
			if err := copyTree(src, r.imagePath(c.dst)); err != nil {
				return nil, fmt.Errorf("COPY %s %s: %w", c.src, c.dst, err)
			}
			r.add(c.dst, r.imagePath(c.dst))
		}
	}
	for _, v := range pl.svc.Volumes {
		switch v.Type {
		case "bind":
			r.add(v.Target, v.Source)
		default: // a named volume or a tmpfs: empty at first start
			d := r.imagePath(filepath.Join("/.volumes", v.Target))
			if err := os.MkdirAll(d, 0o755); err != nil {
				return nil, err
			}
			r.add(v.Target, d)
		}
	}
	for _, p := range append([]string{"/root"}, pl.image.private...) {
		if err := os.MkdirAll(r.imagePath(p), 0o755); err != nil {
			return nil, err
		}
		r.add(p, r.imagePath(p))
	}
	if pl.image.goCmds != "" {
		for _, name := range commandNames(pl.image.goCmds, pl.argvs()...) {
			bin, err := build(name)
			if err != nil {
				return nil, err
			}
			r.add(pl.image.goCmds+"/"+name, bin)
		}
	}
	return r, nil
}

// commandNames returns the names of the programs under folder that the arguments use.
func commandNames(folder string, argvs ...[]string) []string {
	var names []string
	pre := folder + "/"
	for _, argv := range argvs {
		for _, a := range argv {
			for i := strings.Index(a, pre); i >= 0; {
				rest := a[i+len(pre):]
				n := strings.IndexFunc(rest, func(r rune) bool { return !isPathRune(r) || r == '/' })
				if n < 0 {
					n = len(rest)
				}
				if name := rest[:n]; name != "" && !slices.Contains(names, name) {
					names = append(names, name)
				}
				j := strings.Index(rest, pre)
				if j < 0 {
					break
				}
				i += len(pre) + j
			}
		}
	}
	return names
}

// rewrite replaces the image paths in an argument (a program, a flag's value, a shell
// script) by their host paths. A path matches at a boundary only: /etc/dsmgw matches in
// "-f /etc/dsmgw/baresip" but not in "/opt/etc/dsmgw".
func (r *root) rewrite(arg string) string {
	for _, m := range r.maps {
		var b strings.Builder
		rest := arg
		for {
			i := strings.Index(rest, m.image)
			if i < 0 {
				b.WriteString(rest)
				break
			}
			end := i + len(m.image)
			before := i == 0 || !isPathRune(rune(rest[i-1]))
			after := end == len(rest) || rest[end] == '/' || !isPathRune(rune(rest[end]))
			b.WriteString(rest[:i])
			if before && after {
				b.WriteString(m.host)
			} else {
				b.WriteString(m.image)
			}
			rest = rest[end:]
		}
		arg = b.String()
	}
	return arg
}

func (r *root) rewriteAll(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = r.rewrite(a)
	}
	return out
}

func isPathRune(r rune) bool {
	return r == '/' || r == '.' || r == '_' || r == '-' ||
		('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || ('0' <= r && r <= '9')
}

// copyTree copies a file, or a folder's content, to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}

// goBuilder builds the repository's commands once each into dir.
type goBuilder struct {
	repo, dir string
	built     map[string]string
}

func (g *goBuilder) build(name string) (string, error) {
	if bin, ok := g.built[name]; ok {
		return bin, nil
	}
	pkg := "./cmd/" + name
	if _, err := os.Stat(filepath.Join(g.repo, "cmd", name)); err != nil {
		return "", fmt.Errorf("the image runs /usr/local/bin/%s, but there is no %s to build it from", name, pkg)
	}
	bin := filepath.Join(g.dir, name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goTool(), append(args, pkg)...)
	cmd.Dir = g.repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	g.built[name] = bin
	return bin, nil
}

// goTool finds the go command: on PATH, else where the Go toolchain lives by default.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}
