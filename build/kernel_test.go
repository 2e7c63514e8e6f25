package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckKernelConfig(t *testing.T) {
	final := filepath.Join(t.TempDir(), ".config")
	os.WriteFile(final, []byte("CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_S=\"x\"\n"), 0o644)
	for _, tt := range []struct {
		frag string
		bad  string
	}{
		{frag: "CONFIG_A=y\nCONFIG_B=n\nCONFIG_D=n\n# CONFIG_A=n\n"},
		{frag: "CONFIG_B=y\n", bad: "CONFIG_B=y became n"},
		{frag: "CONFIG_Z=y\n", bad: "CONFIG_Z=y became n"},
		{frag: "CONFIG_C=y\n", bad: "CONFIG_C=y became m"},
	} {
		err := checkKernelConfig(final, []byte(tt.frag), "frag.config")
		if tt.bad == "" && err != nil {
			t.Errorf("%q: %v", tt.frag, err)
		}
		if tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)) {
			t.Errorf("%q: err %v, want mention of %q", tt.frag, err, tt.bad)
		}
	}
}

func TestBoardsLoad(t *testing.T) {
	for _, name := range listBoards("..") {
		b, err := LoadBoard("..", name)
		if err != nil {
			t.Errorf("board %s: %v", name, err)
			continue
		}
		if _, err := os.Stat(filepath.Join("..", "kernel-configs", b.KernelFamily()+".config")); err != nil {
			t.Errorf("board %s: kernel family %q has no fragment", name, b.KernelFamily())
		}
	}
	if _, err := LoadBoard("..", "no-such-board"); err == nil || !strings.Contains(err.Error(), "qemu-tpm2") {
		t.Errorf("unknown board error should list boards: %v", err)
	}
	if _, err := LoadBoard("..", "../etc"); err == nil {
		t.Error("path-like board name accepted")
	}
}

func TestBusyboxKeyTracksSources(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "cmds/a/main.go", "pkg/p/p.go", "pkg/p/p_test.go"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), []byte(f), 0o644)
	}
	k1, err := busyboxKey(root, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "pkg/p/p_test.go"), []byte("changed"), 0o644)
	if k2, _ := busyboxKey(root, []string{"a"}); k2 != k1 {
		t.Error("a test file changed the busybox key")
	}
	os.WriteFile(filepath.Join(root, "pkg/p/p.go"), []byte("changed"), 0o644)
	if k3, _ := busyboxKey(root, []string{"a"}); k3 == k1 {
		t.Error("a source change did not change the busybox key")
	}
	if k4, _ := busyboxKey(root, []string{"a", "b"}); k4 == k1 {
		t.Error("the command list does not change the key")
	}
}
