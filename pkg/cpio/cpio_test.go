package cpio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
)

func sample() []Entry {
	return []Entry{
		File("etc/config", 0o644, []byte("CONFIG_TPM=y\n")),
		Dir("etc", 0o755),
		Symlink("init", "bbin/init"),
		CharDev("dev/console", 0o600, 5, 1),
		Dir("dev", 0o755),
		File("bbin/bb", 0o755, bytes.Repeat([]byte{0x7f}, 1001)),
		Dir("bbin", 0o755),
	}
}

func TestRoundTripAndDeterminism(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteAll(&a, sample()); err != nil {
		t.Fatal(err)
	}
	if err := WriteAll(&b, sample()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same entries gave different archives")
	}
	if a.Len()%512 != 0 {
		t.Errorf("archive is %d bytes, not a multiple of 512", a.Len())
	}
	got, err := ReadAll(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, e.Name)
	}
	if want := "bbin,bbin/bb,dev,dev/console,etc,etc/config,init"; strings.Join(names, ",") != want {
		t.Errorf("names %v, want %s", names, want)
	}
	if string(got[5].Data) != "CONFIG_TPM=y\n" || got[3].Major != 5 || got[3].Minor != 1 {
		t.Errorf("contents not preserved: %+v", got)
	}
	if err := WriteAll(&bytes.Buffer{}, append(sample(), Dir("etc", 0o755))); err == nil {
		t.Error("duplicate entry accepted")
	}
}

// TestGNUCpioReadsIt checks the archive against GNU cpio, an independent reader.
func TestGNUCpioReadsIt(t *testing.T) {
	testenv.NeedTool(t, "cpio", "cpio")
	var a bytes.Buffer
	if err := WriteAll(&a, sample()); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-it", "-v", "--quiet")
	cmd.Stdin = &a
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -it: %v\n%s", err, out)
	}
	for _, want := range []string{"bbin/bb", "dev/console", "init -> bbin/init", "etc/config"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, out)
		}
	}
	// And our reader reads what GNU cpio writes.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o644)
	gen := exec.Command("cpio", "-o", "-H", "newc", "--quiet")
	gen.Dir = dir
	gen.Stdin = strings.NewReader("hello\n")
	arch, err := gen.Output()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadAll(bytes.NewReader(arch))
	if err != nil || len(got) != 1 || got[0].Name != "hello" || string(got[0].Data) != "hi\n" {
		t.Fatalf("read GNU archive: %v %+v", err, got)
	}
}

func FuzzReader(f *testing.F) {
	var a bytes.Buffer
	WriteAll(&a, sample())
	f.Add(a.Bytes())
	f.Add([]byte("070701garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadAll(bytes.NewReader(data)) // must not panic or allocate unboundedly
	})
}
