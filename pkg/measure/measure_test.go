package measure

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/tpm"
	"github.com/goheads/goheads/pkg/tpm/tpmtest"
)

// recorder is an Extender that records what would be extended; the tests
// below that use it are paired with swtpm tests of the same path.
type recorder struct{ got []rec }
type rec struct {
	pcr  int
	data string
}

func (r *recorder) Measure(pcr int, data []byte, desc string) error {
	r.got = append(r.got, rec{pcr, string(data)})
	return nil
}

func TestUserFilePath(t *testing.T) {
	for _, tt := range []struct {
		name, want string
		bad        bool
	}{
		{name: "heads/initrd/.gnupg/pubring.kbx", want: "/.gnupg/pubring.kbx"},
		{name: "heads/initrd/etc/config.user", want: "/etc/config.user"},
		{name: "heads/initrd/../../etc/passwd", bad: true},
		{name: "heads/initrd/etc/../x", bad: true},
		{name: "heads/initrd/", bad: true},
		{name: "heads/initrdx/y", bad: true},
		{name: "fallback/payload", bad: true},
		{name: "heads/initrd//etc/x", bad: true},
	} {
		got, err := UserFile{Name: tt.name}.Path()
		if tt.bad != (err != nil) || got != tt.want {
			t.Errorf("Path(%q) = %q, %v", tt.name, got, err)
		}
	}
}

func TestCBFSInitWritesAndMeasuresInOrder(t *testing.T) {
	root := t.TempDir()
	files := []UserFile{
		{Name: "heads/initrd/.gnupg/pubring.kbx", Data: []byte("KBX")},
		{Name: "heads/initrd/../escape", Data: []byte("evil")},
		{Name: "heads/initrd/etc/config.user", Data: []byte("CONFIG_X=y\n")},
	}
	r := &recorder{}
	err := CBFSInit(r, files, root, 7)
	if err == nil {
		t.Fatal("a path escaping the root was accepted")
	}
	want := []rec{
		{7, "/.gnupg/pubring.kbx"}, {7, "KBX"},
		{7, "heads/initrd/../escape"}, {7, "evil"},
		{7, "/etc/config.user"}, {7, "CONFIG_X=y\n"},
	}
	if len(r.got) != len(want) {
		t.Fatalf("extends %+v, want %+v", r.got, want)
	}
	for i := range want {
		if r.got[i] != want[i] {
			t.Errorf("extend %d = %+v, want %+v", i, r.got[i], want[i])
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/config.user")); string(b) != "CONFIG_X=y\n" {
		t.Errorf("config.user not written: %q", b)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "escape")); err == nil {
		t.Error("file escaped the root")
	}
}

// TestCBFSInitOnSwtpm checks the PCR 7 value against a host fold of Heads'
// measurement, on a real TPM of each family.
func TestCBFSInitOnSwtpm(t *testing.T) {
	for _, fam := range tpmtest.Families {
		t.Run(fam.String(), func(t *testing.T) {
			tp := tpmtest.Start(t, fam).TPM()
			files := []UserFile{
				{Name: "heads/initrd/.gnupg/pubring.kbx", Data: bytes.Repeat([]byte{1}, 3000)},
				{Name: "heads/initrd/etc/config.user", Data: []byte("export CONFIG_BOOT_DEV=\"/dev/vda1\"\n")},
			}
			if err := CBFSInit(tp, files, t.TempDir(), PCRConfig); err != nil {
				t.Fatal(err)
			}
			want := make([]byte, fam.PCRSize())
			// Heads' recipe, spelled out: extend -ic "/path", then -if file.
			for _, f := range files {
				for _, m := range []string{strings.TrimPrefix(f.Name, "heads/initrd"), string(f.Data)} {
					h := fam.NewHash()
					h.Write([]byte(m))
					d := h.Sum(nil)
					h = fam.NewHash()
					h.Write(want)
					h.Write(d)
					want = h.Sum(nil)
				}
			}
			got, err := tp.ReadPCR(PCRConfig)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("PCR 7 = %x, host computes %x", got, want)
			}
		})
	}
}

func TestBootModeAndModules(t *testing.T) {
	tp := tpmtest.Start(t, tpm.Family20).TPM()
	if err := BootMode(tp, ModeRecovery); err != nil {
		t.Fatal(err)
	}
	if err := BootMode(tp, "evil"); err == nil {
		t.Error("unknown boot mode accepted")
	}
	d := sha256.Sum256([]byte("recovery"))
	want := sha256.Sum256(append(make([]byte, 32), d[:]...))
	if got, _ := tp.ReadPCR(4); !bytes.Equal(got, want[:]) {
		t.Errorf("PCR 4 = %x, want %x", got, want)
	}

	mod := filepath.Join(t.TempDir(), "usbhid.ko")
	os.WriteFile(mod, []byte("\x7fELF module"), 0o644)
	var loaded string
	if err := LoadModule(tp, mod, []string{"quirks=1", "x=2"}, func(img []byte, p string) error {
		loaded = string(img) + "|" + p
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if loaded != "\x7fELF module|quirks=1 x=2" {
		t.Errorf("loaded %q", loaded)
	}
	pcr := make([]byte, 32)
	// Heads: extend -ic "$*" (parameters), then -if module.
	for _, m := range [][]byte{[]byte("quirks=1 x=2"), []byte("\x7fELF module")} {
		d := sha256.Sum256(m)
		v := sha256.Sum256(append(pcr, d[:]...))
		pcr = v[:]
	}
	if got, _ := tp.ReadPCR(5); !bytes.Equal(got, pcr) {
		t.Errorf("PCR 5 = %x, want %x", got, pcr)
	}
	if err := LoadModule(tp, mod, nil, func([]byte, string) error { return errors.New("no") }); err == nil {
		t.Error("load failure not reported")
	}
}
