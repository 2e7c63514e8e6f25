package bootdisk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
)

func image(t *testing.T, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	return p
}

func probeFile(t *testing.T, p string) FS {
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Probe(f)
}

// TestProbeRealFilesystems checks the superblock probe against images made
// by the real mkfs and cryptsetup.
func TestProbeRealFilesystems(t *testing.T) {
	testenv.NeedTool(t, "mkfs.ext4", "e2fsprogs")
	ext := image(t, 8<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", ext).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	if got := probeFile(t, ext); got != FSExt {
		t.Errorf("ext4 image probed as %q", got)
	}
	if _, err := exec.LookPath("cryptsetup"); err == nil {
		l := image(t, 20<<20)
		cmd := exec.Command("cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", l, "-d", "-")
		cmd.Stdin = strings.NewReader("pw")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("luksFormat: %v %s", err, out)
		}
		if got := probeFile(t, l); got != FSLUKS {
			t.Errorf("LUKS image probed as %q", got)
		}
	} else {
		testenv.Missing(t, "cryptsetup not found; install it: apt-get install cryptsetup-bin")
	}
	if got := probeFile(t, image(t, 1<<20)); got != FSUnknown {
		t.Errorf("zero image probed as %q", got)
	}
}

func TestPartitionsSkipsPartitionedDisks(t *testing.T) {
	sys := t.TempDir()
	dev := t.TempDir()
	// vda with vda1 (partition) and vdb without partitions; loop0 ignored.
	for _, d := range []struct{ name, parent string }{{"vda", ""}, {"vda1", "vda"}, {"vdb", ""}, {"loop0", ""}} {
		dir := filepath.Join(sys, "devices", d.parent, d.name)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "size"), []byte("131072\n"), 0o644)
		if d.parent != "" {
			os.WriteFile(filepath.Join(dir, "partition"), []byte("1\n"), 0o644)
		}
		os.MkdirAll(filepath.Join(sys, "class"), 0o755)
		os.Symlink(dir, filepath.Join(sys, "class", d.name))
		os.WriteFile(filepath.Join(dev, d.name), nil, 0o644)
	}
	SysBlock, DevDir = filepath.Join(sys, "class"), dev
	defer func() { SysBlock, DevDir = "/sys/class/block", "/dev" }()
	ps, err := Partitions()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		names = append(names, filepath.Base(p.Dev))
		if p.Sectors != 131072 {
			t.Errorf("%s: %d sectors", p.Dev, p.Sectors)
		}
	}
	if strings.Join(names, ",") != "vda1,vdb" {
		t.Errorf("partitions %v, want vda1,vdb", names)
	}
}

func TestNotFoundMentionsLUKS(t *testing.T) {
	err := &NotFoundError{LUKS: []string{"/dev/vda2"}, Skipped: []Skipped{{"/dev/vda2", "LUKS container"}}}
	if !strings.Contains(err.Error(), "separate, unencrypted /boot") {
		t.Errorf("message %q", err)
	}
}

func TestHasBootConfig(t *testing.T) {
	d := t.TempDir()
	if HasBootConfig(d) {
		t.Error("empty dir has a boot config")
	}
	os.MkdirAll(filepath.Join(d, "boot", "grub"), 0o755)
	if !HasBootConfig(d) {
		t.Error("single-partition /boot/grub not recognised")
	}
}
