package bootentry

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Lines as Heads writes them (taken from testdata/*.heads, Heads' own output).
const (
	headsDebian = "Debian GNU/Linux|elf|kernel /vmlinuz-6.1.0-18-amd64|initrd /initrd.img-6.1.0-18-amd64|append root=/dev/mapper/debian--vg-root ro quiet"
	headsArch   = "Arch Linux|elf|kernel /boot/vmlinuz-linux|initrd /boot/intel-ucode.img|initrd /boot/initramfs-linux.img|append root=UUID=e4d3c2b1-a098-4f7e-8d6c-5b4a39281706 rw loglevel=3 quiet"
	headsMemtst = "Memory test (memtest86+x64.bin)|elf|kernel /memtest86+x64.bin"
	headsQubes  = "Qubes, with Xen hypervisor|xen|kernel /xen-4.17.2.gz placeholder console=none smt=off |module /vmlinuz-6.1.62 placeholder root=/dev/mapper/qubes_dom0-root ro quiet|module /initramfs-6.1.62.img"
	headsXenISO = "Install Qubes OS R4.2.0|xen|kernel /isolinux/xen.gz console=none|module /isolinux/vmlinuz inst.stage2=hd:LABEL=QUBES-R4-2-0-x86_64 quiet|module /isolinux/initrd.img"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		line string
		want Entry
	}{
		{headsDebian, Entry{
			Name: "Debian GNU/Linux", Kind: KindELF, Kernel: "/vmlinuz-6.1.0-18-amd64",
			Initrds: []string{"/initrd.img-6.1.0-18-amd64"},
			Append:  "root=/dev/mapper/debian--vg-root ro quiet",
		}},
		{headsArch, Entry{
			Name: "Arch Linux", Kind: KindELF, Kernel: "/boot/vmlinuz-linux",
			Initrds: []string{"/boot/intel-ucode.img", "/boot/initramfs-linux.img"},
			Append:  "root=UUID=e4d3c2b1-a098-4f7e-8d6c-5b4a39281706 rw loglevel=3 quiet",
		}},
		{headsMemtst, Entry{Name: "Memory test (memtest86+x64.bin)", Kind: KindELF, Kernel: "/memtest86+x64.bin"}},
		{headsQubes, Entry{
			Name: "Qubes, with Xen hypervisor", Kind: KindXen, Kernel: "/xen-4.17.2.gz",
			KernelArgs: "placeholder console=none smt=off ", // Heads' space before '|'
			Modules: []Module{
				{Path: "/vmlinuz-6.1.62", Args: "placeholder root=/dev/mapper/qubes_dom0-root ro quiet"},
				{Path: "/initramfs-6.1.62.img"},
			},
		}},
		{headsXenISO, Entry{
			Name: "Install Qubes OS R4.2.0", Kind: KindXen, Kernel: "/isolinux/xen.gz", KernelArgs: "console=none",
			Modules: []Module{
				{Path: "/isolinux/vmlinuz", Args: "inst.stage2=hd:LABEL=QUBES-R4-2-0-x86_64 quiet"},
				{Path: "/isolinux/initrd.img"},
			},
		}},
		{"m|multiboot|kernel /mb.elf a=1|module /mod", Entry{Name: "m", Kind: KindMultiboot, Kernel: "/mb.elf", KernelArgs: "a=1", Modules: []Module{{Path: "/mod"}}}},
		{"Title ending in a space |elf|kernel /k", Entry{Name: "Title ending in a space ", Kind: KindELF, Kernel: "/k"}},
		{"|elf|kernel /k", Entry{Kind: KindELF, Kernel: "/k"}}, // Heads writes empty names for title-less entries
		{headsDebian + "\n", Entry{
			Name: "Debian GNU/Linux", Kind: KindELF, Kernel: "/vmlinuz-6.1.0-18-amd64",
			Initrds: []string{"/initrd.img-6.1.0-18-amd64"},
			Append:  "root=/dev/mapper/debian--vg-root ro quiet",
		}},
	}
	for _, tt := range tests {
		got, err := ParseLine(tt.line)
		if err != nil {
			t.Errorf("ParseLine(%q): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseLine(%q)\n got %#v\nwant %#v", tt.line, got, tt.want)
		}
		if s := got.String(); s != strings.TrimSuffix(tt.line, "\n") {
			t.Errorf("String() = %q, want the line back %q", s, tt.line)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"name",
		"name|elf",
		"name|elf|vmlinuz",                  // no "kernel "
		"name|elf|kernel ",                  // empty path
		"name|elf|kernel vmlinuz",           // relative
		"name|elf|kernel /../../etc/shadow", // climbs out
		"name|elf|kernel /a/../../b",
		"name|bzimage|kernel /k",          // unknown kind
		"name|elf|kernel /k|initrd",       // empty initrd
		"name|elf|kernel /k|initrd /a /b", // two words in one initrd
		"name|elf|kernel /k|append",       // empty append
		"name|elf|kernel /k|append a|append b",
		"name|elf|kernel /k|append a|initrd /i", // initrd after append
		"name|elf|kernel /k|module /m",          // module in elf
		"name|xen|kernel /x|initrd /i",          // initrd in xen
		"name|xen|kernel /x|append a",
		"name|elf|kernel /k|foo bar",
		"name|elf|kernel /k|append a\tb",
		"name|elf|kernel /k|append a\x1b[2Jb",
		"name|elf|kernel /k\x00|append a",
		"name|elf|kernel /k|append  a",  // leading space
		"name|elf|kernel /k|append a ",  // trailing space at the end of the line
		"name|elf|kernel /k |append a",  // space after a path
		"x|xen|kernel /x |module /m",    // pad without arguments: not what String writes
		"name|elf|kernel /k|append a  ", // two trailing spaces
		"na\x1bme|elf|kernel /k",        // control character in the name
		"two  spaces|elf|kernel /k",     // not what Heads writes
		"name|elf|kernel /k\nsecond|elf|kernel /k",
		"name|elf|kernel /k\r\n",
	} {
		if e, err := ParseLine(line); err == nil {
			t.Errorf("ParseLine(%q) = %#v, want an error", line, e)
		} else if !errors.Is(err, ErrBadLine) {
			t.Errorf("ParseLine(%q) error %v does not wrap ErrBadLine", line, err)
		}
	}
}

func TestStringTrimsLineEnd(t *testing.T) {
	// A pad kept in the last field's arguments is trimmed, as Heads' echo does.
	e := Entry{Name: "x", Kind: KindXen, Kernel: "/xen.gz", KernelArgs: "a ", Modules: []Module{{Path: "/vmlinuz", Args: "b "}}}
	if got, want := e.String(), "x|xen|kernel /xen.gz a |module /vmlinuz b"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"Debian GNU/Linux":       "Debian GNU/Linux",
		"  lead\tand  inner ":    "lead and inner ",
		"pipe | here":            "pipe here",
		"esc\x1b[2Jseq":          "esc[2Jseq",
		"c1\u0085control":        "c1control",
		"latin1 \xe9t\xe9":       "latin1 \xe9t\xe9", // invalid UTF-8 kept byte for byte
		"Bob's OS":               "Bob's OS",
		"||":                     "",
		"Ubuntu (recovery mode)": "Ubuntu (recovery mode)",
	} {
		if got := CleanName(in); got != want {
			t.Errorf("CleanName(%q) = %q, want %q", in, got, want)
		}
		if got := CleanName(want); got != want {
			t.Errorf("CleanName not idempotent on %q: %q", want, got)
		}
	}
}

func TestFiles(t *testing.T) {
	e, err := ParseLine(headsQubes)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/xen-4.17.2.gz", "/vmlinuz-6.1.62", "/initramfs-6.1.62.img"}
	if got := e.Files(); !reflect.DeepEqual(got, want) {
		t.Errorf("Files() = %q, want %q", got, want)
	}
	e, _ = ParseLine(headsArch)
	want = []string{"/boot/vmlinuz-linux", "/boot/intel-ucode.img", "/boot/initramfs-linux.img"}
	if got := e.Files(); !reflect.DeepEqual(got, want) {
		t.Errorf("Files() = %q, want %q", got, want)
	}
}

// Dedupe is kexec-select-boot.sh -u: sed 's/|append \([^|]*\)---[^|]*/|append \1/g'
// then awk -F'|' '!seen[$1]++'.
func TestDedupe(t *testing.T) {
	var in []Entry
	for _, l := range []string{
		"Install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/initrd.gz|append vga=788 quiet",
		"Graphical install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/gtk/initrd.gz|append vga=788 --- quiet",
		"Install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/initrd.gz|append vga=788 --- quiet",
		"Expert install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/initrd.gz|append priority=low vga=788 ---",
		"Graphical install|elf|kernel /other|append x",
		"Odd|elf|kernel /k|append a --- b --- c",
	} {
		e, err := ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, e)
	}
	var got []string
	for _, e := range Dedupe(in) {
		got = append(got, e.String())
	}
	want := []string{
		"Install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/initrd.gz|append vga=788 quiet",
		"Graphical install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/gtk/initrd.gz|append vga=788",
		"Expert install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/initrd.gz|append priority=low vga=788",
		"Odd|elf|kernel /k|append a --- b", // sed's greedy match cuts at the last ---
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Dedupe:\n got %q\nwant %q", got, want)
	}
}
