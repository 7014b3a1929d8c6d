package topology

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDockerfile(t *testing.T) {
	tests := map[string]struct {
		in   string
		want dockerfile
	}{
		"last stage only, exec form": {
			in: "FROM golang AS build\nCOPY . .\nRUN go build -o /out/gw ./cmd/gw\n" +
				"FROM debian\nRUN apt-get update && \\\n    apt-get install -y curl\n" +
				"COPY --from=build /out/gw /usr/local/bin/gw\nENTRYPOINT [\"/usr/local/bin/gw\"]\n",
			want: dockerfile{fromStage: []copyLine{{"/out/gw", "/usr/local/bin/gw"}}, env: map[string]string{},
				entrypoint: []string{"/usr/local/bin/gw"}},
		},
		"copies into a folder, shell form, env": {
			in: "# comment\nFROM debian\nCOPY --chown=1:1 a.cfg b/ /etc/x/\nCOPY c /etc/c\nWORKDIR /data\n" +
				"ENV A=1 B=\"two words\"\nENV C three\nCMD redis-server --port 1\n",
			want: dockerfile{
				copies: []copyLine{{"a.cfg", "/etc/x/a.cfg"}, {"b/", "/etc/x/b"}, {"c", "/etc/c"}},
				env:    map[string]string{"A": "1", "B": "two words", "C": "three"}, workdir: "/data",
				cmd: []string{"/bin/sh", "-c", "redis-server --port 1"},
			},
		},
		"entrypoint resets cmd": {
			in:   "FROM x\nCMD [\"a\"]\nENTRYPOINT [\"b\"]\n",
			want: dockerfile{env: map[string]string{}, entrypoint: []string{"b"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseDockerfile(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestParseDockerfileErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no FROM":          "RUN true\n",
		"COPY before FROM": "COPY a b\nFROM x\n",
		"COPY one arg":     "FROM x\nCOPY a\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseDockerfile(strings.NewReader(in)); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

// TestProjectDockerfiles parses the repository's Dockerfiles: the images the compose file
// builds must be readable here.
func TestProjectDockerfiles(t *testing.T) {
	f, err := findComposeFile()
	if err != nil {
		t.Fatal(err)
	}
	for key := range images {
		if !strings.Contains(key, "Dockerfile") {
			continue
		}
		b, err := os.Open(filepath.Join(filepath.Dir(f), key))
		if err != nil {
			t.Fatal(err)
		}
		d, err := parseDockerfile(b)
		b.Close()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if len(d.entrypoint)+len(d.cmd)+len(d.copies)+len(d.fromStage) == 0 {
			t.Fatalf("%s: nothing read: %+v", key, d)
		}
	}
}

func FuzzParseDockerfile(f *testing.F) {
	f.Add("FROM a\nCOPY --from=b /x /y\nENTRYPOINT [\"/y\"]\n")
	f.Add("FROM a\nENV A=\"b c\" D=e\nCMD x \\\n y\nCOPY a b c/\n")
	f.Add("FROM a\nENV\nCOPY\nENTRYPOINT [\nWORKDIR\n")
	f.Fuzz(func(t *testing.T, in string) {
		d, err := parseDockerfile(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, c := range append(d.copies, d.fromStage...) {
			if c.src == "" || c.dst == "" {
				t.Fatalf("empty copy %+v from %q", c, in)
			}
		}
	})
}
