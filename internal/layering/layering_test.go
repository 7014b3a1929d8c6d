package layering

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "dsmgw"

// roles are the role packages' roots; a package belongs to a role when its path is the
// root or lies under it.
var roles = []string{"store", "otbridge", "asadapter", "mediagw", "webclient"}

// allowedEdges are the only imports from one role's packages to another's: from role to
// the exact packages listed.
var allowedEdges = map[string][]string{
	"otbridge":  {"dsmgw/store"},
	"webclient": {"dsmgw/store"}, // the schema served to browsers
	// The DSM, and the media gateway's client types (Client, requests, Event).
	"asadapter": {"dsmgw/store", "dsmgw/mediagw"},
}

// helpers are the internal packages any test or tool may use: they know no role.
var helpers = []string{"internal/proc", "internal/redisrun", "internal/testpeer"}

// libraries are protocol packages without I/O or state of their own that any role may
// import: floorctl (MCPTT floor control, TS 24.380), which the AS adapter's push-to-talk
// calls (asadapter/ptt) and the demo conference server both run. They import no role
// package and nothing of internal/.
var libraries = []string{"floorctl"}

// roleOf returns the role a package belongs to, or "".
func roleOf(pkg string) string {
	for _, r := range roles {
		root := module + "/" + r
		if pkg == root || strings.HasPrefix(pkg, root+"/") {
			return r
		}
	}
	return ""
}

// imports returns every package of the module with the module's packages it imports
// (tests excluded), from go list.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (f[0] != module && !strings.HasPrefix(f[0], module+"/")) {
			continue
		}
		var own []string
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module+"/") {
				own = append(own, imp)
			}
		}
		pkgs[f[0]] = own
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no package of the module")
	}
	return pkgs
}

func TestLayering(t *testing.T) {
	pkgs := imports(t)
	for pkg, imps := range pkgs {
		role := roleOf(pkg)
		for _, imp := range imps {
			irole := roleOf(imp)
			lib := slices.Contains(libraries, strings.TrimPrefix(imp, module+"/"))
			switch {
			case lib:
				// Any package may use a library.
			case slices.Contains(libraries, strings.TrimPrefix(pkg, module+"/")):
				t.Errorf("%s imports %s: a library imports no other package of the module", pkg, imp)
			case role != "" && irole != "" && irole != role && !slices.Contains(allowedEdges[role], imp):
				t.Errorf("%s imports %s: role %s may import only %v of other roles", pkg, imp, role, allowedEdges[role])
			case role != "" && irole == "":
				t.Errorf("%s imports %s: a role package imports no internal/ or cmd/ package", pkg, imp)
			case strings.HasPrefix(pkg, module+"/asadapter/") && imp == module+"/asadapter":
				t.Errorf("%s imports %s: asadapter's sub-packages import nothing of call control", pkg, imp)
			case slices.Contains(helpers, strings.TrimPrefix(pkg, module+"/")) && irole != "":
				t.Errorf("%s imports %s: the helpers know no role package", pkg, imp)
			}
		}
	}
	// The rules above must be checking something: the roles and helpers they name exist.
	for _, p := range append(append(append([]string{}, roles...), helpers...), libraries...) {
		if _, ok := pkgs[module+"/"+p]; !ok {
			t.Errorf("package %s/%s not found: update the layering rules", module, p)
		}
	}
	for role, edges := range allowedEdges {
		for _, e := range edges {
			if _, ok := pkgs[e]; !ok {
				t.Errorf("allowed edge %s → %s names no package: update allowedEdges", role, e)
			}
		}
	}
}
