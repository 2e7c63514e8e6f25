package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// deniedDeps must never be reachable from the initramfs busybox (cmds/* and
// the u-root commands it includes): each costs flash bytes or attack surface
// out of proportion to what goheads needs. The reason is printed on failure.
var deniedDeps = map[string]string{
	"net/http":                                   "an HTTP stack in the firmware",
	"html/template":                              "reflection-heavy templating",
	"google.golang.org/protobuf":                 "protobuf (+MBs); keep go-tpm-tools' client on the host side",
	"github.com/golang/protobuf":                 "protobuf",
	"github.com/google/go-tpm-tools":             "pulls protobuf and attestation code (+3 MB); use go-tpm directly",
	"github.com/google/go-sev-guest":             "attestation code the firmware does not need",
	"github.com/google/go-tdx-guest":             "attestation code the firmware does not need",
	"github.com/spf13/cobra":                     "reflection-heavy CLI framework",
	"github.com/spf13/viper":                     "reflection-heavy configuration",
	"github.com/urfave/cli":                      "reflection-heavy CLI framework",
	"github.com/u-root/gobusybox":                "builder code (must stay in build/)",
	"github.com/u-root/mkuimage":                 "builder code (must stay in build/)",
	"github.com/goheads/goheads/build":           "the builder",
	"github.com/goheads/goheads/pkg/vmtest":      "test harness",
	"github.com/goheads/goheads/pkg/testdisk":    "test helper",
	"github.com/goheads/goheads/pkg/testenv":     "test helper",
	"github.com/goheads/goheads/pkg/tpm/tpmtest": "test helper",
	"testing": "test code in the firmware",
}

func denied(pkg string) (string, bool) {
	for d, why := range deniedDeps {
		if pkg == d || strings.HasPrefix(pkg, d+"/") {
			return why, true
		}
	}
	return "", false
}

func TestInitramfsDependencies(t *testing.T) {
	roots := []string{"./cmds/..."}
	for _, c := range urootCommands {
		roots = append(roots, "github.com/u-root/u-root/cmds/core/"+c)
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, roots...)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	if len(imports) < 50 {
		t.Fatalf("go list returned only %d packages", len(imports))
	}
	var bad []string
	for pkg := range imports {
		if why, ok := denied(pkg); ok {
			bad = append(bad, pkg+" ("+why+"): "+chain(imports, pkg))
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Errorf("denied dependency in the initramfs: %s", b)
	}
}

// chain finds an import path from a command to pkg, to say who pulled it in.
func chain(imports map[string][]string, target string) string {
	prev := map[string]string{}
	var queue []string
	for p := range imports {
		if strings.Contains(p, "/cmds/") {
			queue = append(queue, p)
			prev[p] = ""
		}
	}
	sort.Strings(queue)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == target {
			var path []string
			for q := p; q != ""; q = prev[q] {
				path = append([]string{q}, path...)
			}
			return strings.Join(path, " -> ")
		}
		for _, i := range imports[p] {
			if _, seen := prev[i]; !seen {
				prev[i] = p
				queue = append(queue, i)
			}
		}
	}
	return "(no path found)"
}

// TestDeniedDetects makes sure the deny list matches what it should, so the
// dependency test above can fail.
func TestDeniedDetects(t *testing.T) {
	for _, p := range []string{"net/http", "net/http/httptrace", "google.golang.org/protobuf/proto", "testing", "github.com/goheads/goheads/pkg/vmtest"} {
		if _, ok := denied(p); !ok {
			t.Errorf("%s not denied", p)
		}
	}
	for _, p := range []string{"net", "net/netip", "github.com/google/go-tpm/tpm2", "github.com/goheads/goheads/pkg/tpm", "github.com/goheads/goheads/pkg/tpmx"} {
		if _, ok := denied(p); ok {
			t.Errorf("%s denied", p)
		}
	}
	imports := map[string][]string{"x/cmds/a": {"x/pkg/b"}, "x/pkg/b": {"net/http"}}
	if got := chain(imports, "net/http"); got != "x/cmds/a -> x/pkg/b -> net/http" {
		t.Errorf("chain = %q", got)
	}
}

// TestCIInstallsHostTools keeps .ci/run's package list and the builder's
// host-tool check in step.
func TestCIInstallsHostTools(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^PACKAGES="([^"]*)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal(".ci/run has no PACKAGES=\"...\" line")
	}
	have := map[string]bool{}
	for _, p := range strings.Fields(string(m[1])) {
		have[p] = true
	}
	for _, tool := range hostTools {
		if !have[tool.pkg] {
			t.Errorf(".ci/run does not install %s (provides %s: %s)", tool.pkg, tool.name, tool.why)
		}
	}
}
