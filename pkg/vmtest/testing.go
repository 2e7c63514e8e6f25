package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/testenv"
)

// Artifacts are a board's build outputs.
type Artifacts struct {
	Board  string
	Dir    string // out/<board>
	Kernel string
	Initrd string
	// Cmdline is the board's CONFIG_LINUX_COMMAND_LINE, what `make run`
	// and a coreboot ROM give the kernel.
	Cmdline string
}

// RepoRoot finds the goheads source tree from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/goheads/goheads\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the goheads tree")
		}
		dir = parent
	}
}

// BoardArtifacts returns out/<board>'s kernel and initramfs, or skips/fails
// the test (per testenv.Strict) when they were not built.
func BoardArtifacts(t testing.TB, board string) Artifacts {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	a := Artifacts{Board: board, Dir: filepath.Join(root, "out", board)}
	a.Kernel = filepath.Join(a.Dir, "bzImage")
	// The uncompressed cpio, as `make run` boots QEMU boards through
	// qboot (build.RawInitrdName says why); the zstd image goes into ROMs.
	a.Initrd = filepath.Join(a.Dir, "initrd.cpio")
	for _, f := range []string{a.Kernel, a.Initrd} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(t, fmt.Sprintf("%s not built; run: make test (or go run ./build all -board %s)", f, board))
		}
	}
	cfg, _, err := config.Load(filepath.Join(root, "boards", board, board+".config"))
	if err != nil {
		t.Fatalf("board %s: %v", board, err)
	}
	a.Cmdline = cfg.Value("CONFIG_LINUX_COMMAND_LINE")
	if a.Cmdline == "" {
		a.Cmdline = "console=ttyS0 quiet"
	}
	return a
}

// bootMu serialises VM tests across packages in one `go test` process;
// `make test` also runs packages one at a time (-p 1): two cores cannot
// run two TCG guests and a build without timing out.
var bootMu sync.Mutex

// StartT boots a VM for a test. The VM is killed when the test ends; if the
// test failed, its console log is kept in out/vmtest-logs/<test>.log and
// the last lines are printed.
func StartT(t testing.TB, cfg Config) *VM {
	t.Helper()
	if err := CheckTools(cfg.TPM != NoTPM); err != nil {
		testenv.Missing(t, err.Error())
	}
	if cfg.TPM != NoTPM && cfg.TPMState == "" {
		cfg.TPMState = t.TempDir()
	}
	bootMu.Lock()
	ctx, cancel := context.WithCancel(context.Background())
	vm, err := Start(ctx, cfg)
	if err != nil {
		cancel()
		bootMu.Unlock()
		t.Fatal(err)
	}
	// The next VM may start as soon as this one is gone (a test that
	// "reboots" stops one VM and starts another on the same TPM state).
	go func() { <-vm.Done(); bootMu.Unlock() }()
	t.Cleanup(func() {
		cancel()
		vm.Kill()
		if t.Failed() {
			keepLog(t, vm.Console())
		}
	})
	return vm
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func keepLog(t testing.TB, console string) {
	root, err := RepoRoot()
	if err != nil {
		return
	}
	dir := filepath.Join(root, "out", "vmtest-logs")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, unsafeName.ReplaceAllString(t.Name(), "_")+".log")
	if err := os.WriteFile(path, []byte(console), 0o644); err == nil {
		lines := strings.Split(strings.TrimRight(console, "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		t.Logf("console log kept in %s; last lines:\n%s", path, strings.Join(lines, "\n"))
	}
}

// MustExpect is Expect that fails the test.
func (vm *VM) MustExpect(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	if err := vm.Expect(s, timeout); err != nil {
		t.Fatal(err)
	}
}

// MustExpectRE is ExpectRE that fails the test.
func (vm *VM) MustExpectRE(t testing.TB, re string, timeout time.Duration) []string {
	t.Helper()
	m, err := vm.ExpectRE(regexp.MustCompile(re), timeout)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// MustScreen is ExpectScreen that fails the test.
func (vm *VM) MustScreen(t testing.TB, re string, timeout time.Duration) []string {
	t.Helper()
	m, err := vm.ExpectScreen(regexp.MustCompile(re), timeout)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// MustSend is Send that fails the test.
func (vm *VM) MustSend(t testing.TB, s string) {
	t.Helper()
	if err := vm.Send(s); err != nil {
		t.Fatal(err)
	}
}

// Shell runs a shell script at the goheads shell prompt and returns what it
// printed. Only two short lines are typed at the interactive prompt (its
// line editor redraws the whole line per keystroke, which is slow on a
// serial line): `cat` copies the script from the terminal in cooked mode,
// then gosh runs it. Markers around the output are built by the shell from
// two halves so the echoed input never matches them.
func (vm *VM) Shell(t testing.TB, script string, timeout time.Duration) string {
	t.Helper()
	shellSeq++
	n := shellSeq
	ready, begin, end := fmt.Sprintf("@@READY%d@@", n), fmt.Sprintf("@@BEGIN%d@@", n), fmt.Sprintf("@@END%d@@", n)
	file := fmt.Sprintf("/tmp/.vmtest%d", n)
	vm.MustSend(t, fmt.Sprintf("echo @@READY%d\"\"@@; cat > %s\r", n, file))
	vm.MustExpect(t, ready, timeout)
	vm.MustSend(t, fmt.Sprintf("echo @@BEGIN%d\"\"@@\n%s\necho @@END%d\"\"@@\n\x04", n, script, n))
	vm.MustSend(t, "gosh "+file+"\r")
	vm.MustExpect(t, "gosh "+file, timeout)
	vm.MustExpect(t, begin, timeout)
	m := vm.MustExpectRE(t, `(?s)^(.*?)`+regexp.QuoteMeta(end), timeout)
	return strings.TrimSpace(strings.ReplaceAll(m[1], "\r", ""))
}

var shellSeq int

// KernelTimestamp parses the kernel's "[   1.234567]" printk time of the first
// console line containing s.
func KernelTimestamp(console, s string) (time.Duration, bool) {
	for _, line := range strings.Split(console, "\n") {
		if !strings.Contains(line, s) {
			continue
		}
		m := regexp.MustCompile(`\[\s*(\d+)\.(\d{6})\]`).FindStringSubmatch(line)
		if m == nil {
			return 0, false
		}
		d, _ := time.ParseDuration(m[1] + "." + m[2] + "s")
		return d, true
	}
	return 0, false
}

// HaveCommand reports whether name is on PATH.
func HaveCommand(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}
