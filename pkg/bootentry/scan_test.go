package bootentry

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// scanCases are file trees under testdata/, each laid out as the mounted
// partition (or medium) Heads would scan. Golden output is in
// testdata/<name>.golden; testdata/<name>.heads, where present, is the
// output of Heads' own kexec-parse-boot.sh / kexec-parse-bls.sh (linuxboot/heads
// aedae4ff, run with bash on the same tree, see TestScanMatchesHeads).
var scanCases = []struct {
	name string
	opts Options
}{
	// Distributions as installed (Heads' /boot scan, -c grub.cfg).
	{"debian12", Options{}},      // separate /boot, submenu, recovery, memtest, fwsetup
	{"ubuntu2204", Options{}},    // separate /boot, $vt_handoff, recovery, os-prober entries
	{"fedora32", Options{}},      // grub.cfg with blscfg: BLS entries + grubenv kernelopts; efi/ stub ignored
	{"fedora-single", Options{}}, // BLS on a single partition: /boot/ paths kept (Heads strips them)
	{"centos8", Options{}},       // BLS with $tuned_* and grub.cfg's set default_kernelopts
	{"qubes42", Options{}},       // Xen multiboot2/module2, nested submenus, Heads' pad before '|'
	{"arch", Options{}},          // single partition, intel-ucode + initramfs
	// Installer media (Heads' USB scan, -c '*.cfg').
	{"debian-iso", Options{Pattern: "*.cfg"}}, // isolinux/*.cfg + boot/grub/grub.cfg, EFI/ ignored
	{"qubes-iso", Options{Pattern: "*.cfg"}},  // isolinux mboot.c32 Xen, localboot, menu exit
	// Hostile or broken.
	{"inject", Options{}},         // $(...), backquotes, quotes, '|', escape sequences, path climbing out
	{"missing-initrd", Options{}}, // first entry's initrd gone: later entries survive (Heads shows none)
	{"unterminated", Options{}},   // unclosed quote, brace and if
	// Variables and options.
	{"vars", Options{FSUUID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}},              // set, load_env, ($root), quoting, pads, FSUUID
	{"ubuntu2204-fsuuid", Options{FSUUID: "3F1E2D4C-9B8A-4C7D-8E6F-5A4B3C2D1E0F"}}, // os-prober entry skipped for its UUID
}

// treeFor maps a case to its tree (several cases share one).
func treeFor(name string) string {
	if name == "ubuntu2204-fsuuid" {
		return "ubuntu2204"
	}
	return name
}

func render(r *Result) string {
	var b strings.Builder
	b.WriteString("## entries\n")
	for _, e := range r.Entries {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	b.WriteString("## sources\n")
	for _, e := range r.Entries {
		b.WriteString(e.Source + ":" + strconv.Itoa(e.Line))
		if e.Submenu != "" {
			b.WriteString(" in " + e.Submenu)
		}
		b.WriteByte('\n')
	}
	b.WriteString("## skipped\n")
	for _, s := range r.Skipped {
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	b.WriteString("## warnings\n")
	for _, w := range r.Warnings {
		b.WriteString(w.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./pkg/bootentry -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestScanGolden(t *testing.T) {
	for _, c := range scanCases {
		t.Run(c.name, func(t *testing.T) {
			opts := c.opts
			opts.Sorted = true
			r, err := Scan(filepath.Join("testdata", treeFor(c.name)), &opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Entries {
				if err := e.Validate(); err != nil {
					t.Errorf("invalid entry %q: %v", e, err)
				}
				back, err := ParseLine(e.String())
				if err != nil {
					t.Errorf("ParseLine(%q): %v", e, err)
				} else if back.String() != e.String() {
					t.Errorf("round trip %q -> %q", e, back)
				}
			}
			checkGolden(t, c.name, render(r))
		})
	}
}

// headsDivergences are the lines where goheads deliberately writes something
// else than Heads, keyed by case; each names Heads' line and ours.
var headsDivergences = map[string][]struct{ heads, ours, why string }{
	"fedora-single": {{
		heads: "Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Workstation Edition)|elf|kernel /vmlinuz-6.5.6-300.fc39.x86_64|initrd /initramfs-6.5.6-300.fc39.x86_64.img|append root=UUID=4d5e6f70-8192-4a3b-bc4d-5e6f708192a3 ro rhgb quiet",
		ours:  "Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Workstation Edition)|elf|kernel /boot/vmlinuz-6.5.6-300.fc39.x86_64|initrd /boot/initramfs-6.5.6-300.fc39.x86_64.img|append root=UUID=4d5e6f70-8192-4a3b-bc4d-5e6f708192a3 ro rhgb quiet",
		why:   "single partition: the kernel is at <mount>/boot/vmlinuz-*, which Heads' /boot strip loses",
	}},
	"centos8": {{
		heads: "CentOS Linux (4.18.0-348.el8.x86_64) 8|elf|kernel /vmlinuz-4.18.0-348.el8.x86_64|initrd /initramfs-4.18.0-348.el8.x86_64.img |append root=/dev/mapper/cl-root ro crashkernel=auto resume=/dev/mapper/cl-swap rd.lvm.lv=cl/root rd.lvm.lv=cl/swap rhgb quiet",
		ours:  "CentOS Linux (4.18.0-348.el8.x86_64) 8|elf|kernel /vmlinuz-4.18.0-348.el8.x86_64|initrd /initramfs-4.18.0-348.el8.x86_64.img|append root=/dev/mapper/cl-root ro crashkernel=auto resume=/dev/mapper/cl-swap rd.lvm.lv=cl/root rd.lvm.lv=cl/swap rhgb quiet",
		why:   "the space left by an empty $tuned_initrd is not kept in an initrd path",
	}},
}

// TestScanMatchesHeads compares Scan with the output of Heads' own parsers
// on the same trees (testdata/*.heads, recorded from linuxboot/heads). Where
// Heads ran to the end, the lines must be identical except for the listed
// divergences; where it aborted on a missing file, what it printed before
// aborting must be the start of ours (ours goes on).
func TestScanMatchesHeads(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.heads"))
	if len(files) < 10 {
		t.Fatalf("found %d .heads files, want the 10 recorded", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".heads")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var heads []string
			aborted := false
			for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
				switch {
				case strings.HasPrefix(l, "### "):
					aborted = true
				case strings.HasPrefix(l, "#"):
				default:
					heads = append(heads, l)
				}
			}
			var opts Options
			for _, c := range scanCases {
				if c.name == name {
					opts = c.opts
				}
			}
			opts.Sorted = true
			r, err := Scan(filepath.Join("testdata", name), &opts)
			if err != nil {
				t.Fatal(err)
			}
			var ours []string
			for _, e := range r.Entries {
				ours = append(ours, e.String())
			}
			// A default Heads saved must read back with ParseLine, unchanged.
		lines:
			for _, l := range heads {
				for _, d := range headsDivergences[name] {
					if l == d.heads {
						continue lines
					}
				}
				e, err := ParseLine(l)
				if err != nil {
					t.Errorf("ParseLine(Heads' %q): %v", l, err)
				} else if e.String() != l {
					t.Errorf("Heads' %q reads back as %q", l, e.String())
				}
			}
			for _, d := range headsDivergences[name] {
				for i := range heads {
					if heads[i] == d.heads {
						heads[i] = d.ours
					}
				}
			}
			if name == "fedora32" || name == "fedora-single" || name == "centos8" {
				// BLS: Heads lists entries in directory order; ours are sorted.
				slices.Sort(heads)
				slices.Sort(ours)
			}
			if aborted {
				if len(ours) <= len(heads) || !slices.Equal(ours[:len(heads)], heads) {
					t.Errorf("Heads aborted after\n%s\nwant those lines first and more after them, got\n%s", strings.Join(heads, "\n"), strings.Join(ours, "\n"))
				}
				return
			}
			if !slices.Equal(ours, heads) {
				t.Errorf("differs from Heads:\n--- ours\n%s\n--- Heads\n%s", strings.Join(ours, "\n"), strings.Join(heads, "\n"))
			}
		})
	}
}
