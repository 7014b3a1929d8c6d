package asadapter

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// packageFuncs parses the package's source (tests excluded) and returns, per file, its
// functions as "name" and its methods as "Recv.name".
func packageFuncs(t *testing.T) map[string]map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = map[string]bool{}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			key := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) == 1 {
				typ := fd.Recv.List[0].Type
				if st, ok := typ.(*ast.StarExpr); ok {
					typ = st.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					key = id.Name + "." + key
				}
			}
			out[name][key] = true
		}
	}
	return out
}

// TestDocMap checks doc.go against the source: every file its walk-through names exists,
// and every function of its "who handles what" map exists in the file the map gives.
func TestDocMap(t *testing.T) {
	funcs := packageFuncs(t)
	b, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, m := range regexp.MustCompile(`\b[a-z_]+\.go\b`).FindAllString(doc, -1) {
		if _, ok := funcs[m]; !ok {
			t.Errorf("doc.go names %s, which is not a source file of the package", m)
		}
	}
	_, table, ok := strings.Cut(doc, "# Who handles what")
	if !ok {
		t.Fatal(`doc.go has no "# Who handles what" section`)
	}
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasSuffix(f[len(f)-1], ".go") {
			t.Errorf("doc.go map line %q: want <trigger> <func> <file>", line)
			continue
		}
		file, fn := f[len(f)-1], f[len(f)-2]
		rows++
		if !funcs[file][fn] {
			t.Errorf("doc.go: %s is not a function of %s (trigger %q)", fn, file, strings.Join(f[:len(f)-2], " "))
		}
	}
	if rows < 20 {
		t.Fatalf("doc.go map has %d rows; the parse went wrong", rows)
	}
}

// TestLayering holds the package's layering: the sub-packages import nothing of call
// control (sdp, confinfo, sipport and icsi nothing of the project at all; ptt only the
// floor control library; users only the seam, confinfo, icsi and the store), and call
// control no other role's package but the media gateway's client types and the store
// (with what those two import), besides floorctl.
func TestLayering(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	deps := func(pkg string) []string {
		out, err := exec.Command(goBin, "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		var ds []string
		for _, d := range strings.Fields(string(out)) {
			if strings.HasPrefix(d, "dsmgw/") && d != pkg {
				ds = append(ds, d)
			}
		}
		return ds
	}
	for pkg, direct := range map[string][]string{
		"dsmgw/asadapter/sdp":      nil,
		"dsmgw/asadapter/confinfo": nil,
		"dsmgw/asadapter/sipport":  nil,
		"dsmgw/asadapter/edge":     nil,
		"dsmgw/asadapter/icsi":     nil,
		"dsmgw/asadapter/ptt":      {"dsmgw/floorctl"},
		"dsmgw/asadapter/users":    {"dsmgw/asadapter/sipport", "dsmgw/asadapter/confinfo", "dsmgw/asadapter/icsi", "dsmgw/store"},
		"dsmgw/asadapter": {"dsmgw/asadapter/sdp", "dsmgw/asadapter/sipport", "dsmgw/asadapter/icsi",
			"dsmgw/asadapter/ptt", "dsmgw/asadapter/edge", "dsmgw/floorctl", "dsmgw/mediagw", "dsmgw/store"},
	} {
		allowed := map[string]bool{}
		for _, d := range direct {
			allowed[d] = true
			if !strings.HasPrefix(d, "dsmgw/asadapter") {
				for _, dd := range deps(d) { // what the store and the media gateway import
					allowed[dd] = true
				}
			}
		}
		for _, d := range deps(pkg) {
			if !allowed[d] {
				t.Errorf("%s imports %s (allowed: %v and what the store and the media gateway import)", pkg, d, direct)
			}
		}
	}
}
