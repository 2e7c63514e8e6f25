package kexec

import (
	"errors"
	"strings"
	"testing"
)

func TestCmdline(t *testing.T) {
	for _, tt := range []struct {
		name string
		o    CmdlineOptions
		want string
	}{
		{"entry only", CmdlineOptions{Entry: "root=/dev/vda2 ro quiet"}, "root=/dev/vda2 ro quiet"},
		{"grub separator", CmdlineOptions{Entry: "placeholder root=x --- console=tty0"}, "placeholder root=x console=tty0"},
		{"board add appended once", CmdlineOptions{Entry: "ro console=ttyS0", BoardAdd: []string{"console=ttyS0", "intel_iommu=on"}}, "ro console=ttyS0 intel_iommu=on"},
		{"remove from entry and add", CmdlineOptions{Entry: "ro quiet splash", Add: []string{"quiet", "vt.default_red=0xff"}, Remove: []string{"quiet", "splash"}}, "vt.default_red=0xff ro"},
		{"quoted words stay whole", CmdlineOptions{Entry: `ro acpi_osi="Windows 2015" x`, Remove: []string{"x"}}, `ro acpi_osi="Windows 2015"`},
		{"empty", CmdlineOptions{}, ""},
	} {
		if got := Cmdline(tt.o); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLoadRefusesLongCmdline(t *testing.T) {
	err := Load([]byte("k"), nil, strings.Repeat("a", MaxCmdline+1))
	if !errors.Is(err, ErrCmdlineTooLong) {
		t.Fatalf("err %v", err)
	}
}

func FuzzWords(f *testing.F) {
	f.Add(`a "b c" d`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, w := range Words(s) {
			if w == "" {
				t.Fatalf("empty word from %q", s)
			}
		}
	})
}
