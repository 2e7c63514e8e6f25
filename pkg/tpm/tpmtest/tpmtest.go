// Package tpmtest starts a real software TPM (swtpm, TPM 1.2 or 2.0) for a
// test, with its own state directory, and stops it when the test ends.
// Restart simulates a power cycle: PCRs reset, NV and persistent objects stay.
package tpmtest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goheads/goheads/pkg/testenv"
	"github.com/goheads/goheads/pkg/tpm"
)

// Sim is one running swtpm.
type Sim struct {
	t        testing.TB
	Family   tpm.Family
	StateDir string
	cmd      *exec.Cmd
	tpm      *tpm.TPM
	conn     *redial
	log      string
}

// redial connects to swtpm on first use and again after Detach: swtpm
// serves one client at a time, so the Go side steps aside while an
// independent client (tpm2-tools) talks to the same TPM.
type redial struct {
	mu   sync.Mutex
	path string
	c    io.Closer
	t    tpm.Transport
}

func (r *redial) Send(cmd []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.t == nil {
		c, t, err := tpm.DialSocket("unix", r.path)
		if err != nil {
			return nil, err
		}
		r.c, r.t = c, t
	}
	rsp, err := r.t.Send(cmd)
	if err != nil {
		r.c.Close()
		r.c, r.t = nil, nil
	}
	return rsp, err
}

func (r *redial) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c == nil {
		return nil
	}
	err := r.c.Close()
	r.c, r.t = nil, nil
	return err
}

// Start starts swtpm for fam with a fresh state directory.
func Start(t testing.TB, fam tpm.Family) *Sim {
	t.Helper()
	return StartWithState(t, fam, t.TempDir())
}

// StartWithState starts swtpm on an existing state directory.
func StartWithState(t testing.TB, fam tpm.Family, dir string) *Sim {
	t.Helper()
	testenv.NeedTool(t, "swtpm", "swtpm swtpm-tools")
	s := &Sim{t: t, Family: fam, StateDir: dir}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

func (s *Sim) sock() string { return filepath.Join(s.StateDir, "data.sock") }

func (s *Sim) start() error {
	os.Remove(s.sock())
	os.Remove(s.sock() + ".ctrl")
	s.log = filepath.Join(s.StateDir, "swtpm.log")
	args := []string{"socket",
		"--tpmstate", "dir=" + s.StateDir,
		"--server", "type=unixio,path=" + s.sock(),
		// tpm2-tools' swtpm TCTI looks for the control socket at <path>.ctrl.
		"--ctrl", "type=unixio,path=" + s.sock() + ".ctrl",
		"--flags", "not-need-init,startup-clear",
		"--log", "file=" + s.log + ",level=1",
	}
	if s.Family == tpm.Family20 {
		args = append(args, "--tpm2")
	}
	s.cmd = exec.Command("swtpm", args...)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start swtpm: %w", err)
	}
	var lastErr error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, _, err := tpm.DialSocket("unix", s.sock())
		if err == nil {
			c.Close()
			s.conn = &redial{path: s.sock()}
			s.tpm = tpm.New(s.conn, s.Family, s.conn)
			return nil
		}
		lastErr = err
	}
	logText, _ := os.ReadFile(s.log)
	s.cmd.Process.Kill()
	s.cmd.Wait()
	return fmt.Errorf("swtpm did not come up: %v\n%s", lastErr, strings.TrimSpace(string(logText)))
}

func (s *Sim) stop() {
	if s.tpm != nil {
		s.tpm.Close()
		s.tpm = nil
	}
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
		s.cmd = nil
	}
}

// TPM returns a handle to the running swtpm.
func (s *Sim) TPM() *tpm.TPM { return s.tpm }

// Restart stops swtpm and starts it again on the same state: a reboot.
func (s *Sim) Restart() *tpm.TPM {
	s.t.Helper()
	s.stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
	return s.tpm
}

// TCTI is the tpm2-tools TCTI string for this swtpm.
func (s *Sim) TCTI() string { return "swtpm:path=" + s.sock() }

// Tool runs an independent TPM client (tpm2-tools) against this swtpm and
// returns its combined output. The Go handle reconnects afterwards.
func (s *Sim) Tool(name string, args ...string) (string, error) {
	s.conn.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "TPM2TOOLS_TCTI="+s.TCTI())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Families is the list tests range over.
var Families = []tpm.Family{tpm.Family20, tpm.Family12}

// Stop stops swtpm now (its state stays in StateDir), e.g. before QEMU
// starts its own swtpm on the same state.
func (s *Sim) Stop() { s.stop() }
