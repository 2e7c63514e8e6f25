package bootentry

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// tree writes files (content "" makes an empty file) and symlinks ("-> target")
// under a new temporary directory and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "-> "); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func scanLines(t *testing.T, dir string, opts Options) (*Result, []string) {
	t.Helper()
	opts.Sorted = true
	r, err := Scan(dir, &opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, lines(r)
}

func TestScanSymlinksStayInside(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "grub.cfg")
	if err := os.WriteFile(secret, []byte("menuentry 'from outside' { linux /vmlinuz; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := tree(t, map[string]string{
		"grub/grub.cfg": "menuentry in { linux /vmlinuz; initrd /initrd.img; }\n" +
			"menuentry out { linux /escape; }\n" +
			"menuentry rel { linux /vmlinuz; initrd /up; }\n",
		"grub2/grub.cfg":         "-> " + secret,
		"vmlinuz":                "-> boot-files/vmlinuz-6.1", // inside: fine
		"boot-files/vmlinuz-6.1": "",
		"initrd.img":             "",
		"escape":                 "-> " + secret,
		"up":                     "-> ../up",
		"loop":                   "-> .", // not followed by the walk
	})
	r, got := scanLines(t, dir, Options{})
	want := []string{"in|elf|kernel /vmlinuz|initrd /initrd.img"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	var reasons []string
	for _, s := range r.Skipped {
		reasons = append(reasons, s.Name+": "+s.Reason)
	}
	wantReasons := []string{"out: kernel /escape leads outside the partition", "rel: initrd /up leads outside the partition"}
	if !reflect.DeepEqual(reasons, wantReasons) {
		t.Errorf("skipped %q, want %q", reasons, wantReasons)
	}
	found := false
	for _, w := range r.Warnings {
		if w.Source == "/grub2/grub.cfg" && strings.Contains(w.Msg, "not read") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning for the grub.cfg symlink leading outside: %v", r.Warnings)
	}
}

func TestScanSkipsEFIAndOddFiles(t *testing.T) {
	dir := tree(t, map[string]string{
		"efi/EFI/debian/grub.cfg":   "menuentry efi { linux /vmlinuz; }\n",
		"EFI/BOOT/grub.cfg":         "menuentry EFI { linux /vmlinuz; }\n",
		"grub/x86_64-efi/grub.cfg":  "menuentry x86_64-efi { linux /vmlinuz; }\n",
		"grub/grub.cfg/placeholder": "", // a directory called grub.cfg
		"grub2/grub.cfg":            "menuentry ok { linux /vmlinuz; }\n",
		"vmlinuz":                   "",
	})
	r, got := scanLines(t, dir, Options{})
	if want := []string{"ok|elf|kernel /vmlinuz"}; !reflect.DeepEqual(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if len(r.Warnings) != 1 || r.Warnings[0].Source != "/grub/grub.cfg" || !strings.Contains(r.Warnings[0].Msg, "not a regular file") {
		t.Errorf("warnings %v, want one about the directory /grub/grub.cfg", r.Warnings)
	}
}

func TestScanBLSLayouts(t *testing.T) {
	entry := func(kernel, initrd string) string {
		return "title T\nlinux " + kernel + "\ninitrd " + initrd + "\noptions ro\n"
	}
	tests := []struct {
		name  string
		files map[string]string
		want  []string
		skip  string
	}{
		{
			// Heads' #804 case: a separate /boot whose entries say /boot/...
			name: "separate /boot, /boot/ paths: stripped as Heads does",
			files: map[string]string{
				"grub2/grub.cfg": "blscfg\n", "loader/entries/a.conf": entry("/boot/vmlinuz-1", "/boot/initramfs-1.img"),
				"vmlinuz-1": "", "initramfs-1.img": "",
			},
			want: []string{"T|elf|kernel /vmlinuz-1|initrd /initramfs-1.img|append ro"},
		},
		{
			name: "separate /boot with a boot -> . link: both readings exist, Heads' wins",
			files: map[string]string{
				"grub2/grub.cfg": "blscfg\n", "loader/entries/a.conf": entry("/boot/vmlinuz-1", "/boot/initramfs-1.img"),
				"vmlinuz-1": "", "initramfs-1.img": "", "boot": "-> .",
			},
			want: []string{"T|elf|kernel /vmlinuz-1|initrd /initramfs-1.img|append ro"},
		},
		{
			name: "single partition, /boot/ paths: kept (Heads breaks here)",
			files: map[string]string{
				"boot/grub2/grub.cfg": "blscfg\n", "boot/loader/entries/a.conf": entry("/boot/vmlinuz-1", "/boot/initramfs-1.img"),
				"boot/vmlinuz-1": "", "boot/initramfs-1.img": "",
			},
			want: []string{"T|elf|kernel /boot/vmlinuz-1|initrd /boot/initramfs-1.img|append ro"},
		},
		{
			name: "single partition, paths relative to /boot: found under /boot",
			files: map[string]string{
				"boot/grub2/grub.cfg": "blscfg\n", "boot/loader/entries/a.conf": entry("/vmlinuz-1", "/initramfs-1.img"),
				"boot/vmlinuz-1": "", "boot/initramfs-1.img": "",
			},
			want: []string{"T|elf|kernel /boot/vmlinuz-1|initrd /boot/initramfs-1.img|append ro"},
		},
		{
			name: "missing initrd names both places tried",
			files: map[string]string{
				"grub2/grub.cfg": "blscfg\n", "loader/entries/a.conf": entry("/boot/vmlinuz-1", "/boot/initramfs-1.img"),
				"vmlinuz-1": "",
			},
			skip: "initrd /initramfs-1.img not found on the partition (nor at /boot/initramfs-1.img)",
		},
		{
			name: "GRUB entries present: BLS not read (Heads)",
			files: map[string]string{
				"grub/grub.cfg": "menuentry G { linux /vmlinuz-1; }\n", "loader/entries/a.conf": entry("/vmlinuz-1", "/initramfs-1.img"),
				"vmlinuz-1": "", "initramfs-1.img": "",
			},
			want: []string{"G|elf|kernel /vmlinuz-1"},
		},
		{
			name: "no grub.cfg at all: BLS still read, kernelopts from grub2/grubenv",
			files: map[string]string{
				"loader/entries/a.conf": "title T\nlinux /vmlinuz-1\n", "vmlinuz-1": "",
				"grub2/grubenv": "# GRUB Environment Block\nkernelopts=root=/dev/sda2 ro\n",
			},
			want: []string{"T|elf|kernel /vmlinuz-1|append root=/dev/sda2 ro"},
		},
		{
			name: "kernelopts from grub.cfg's set default_kernelopts (Heads) when grubenv has none",
			files: map[string]string{
				"grub2/grub.cfg":        "set default_kernelopts=\"root=/dev/sda3 ro \"\nblscfg\n",
				"loader/entries/a.conf": "title T\nlinux /vmlinuz-1\noptions $kernelopts\n", "vmlinuz-1": "",
			},
			want: []string{"T|elf|kernel /vmlinuz-1|append root=/dev/sda3 ro"},
		},
		{
			name: "kernelopts from grub.cfg's fallback set kernelopts (Fedora 30-33)",
			files: map[string]string{
				"grub2/grub.cfg":        "if [ -z \"${kernelopts}\" ]; then\n  set kernelopts=\"root=/dev/sda4 ro \"\nfi\nblscfg\n",
				"loader/entries/a.conf": "title T\nlinux /vmlinuz-1\noptions $kernelopts\n", "vmlinuz-1": "",
			},
			want: []string{"T|elf|kernel /vmlinuz-1|append root=/dev/sda4 ro"},
		},
		{
			name: "symlinked and non-.conf files in loader/entries are ignored (find -type f -name '*.conf')",
			files: map[string]string{
				"grub2/grub.cfg": "blscfg\n", "loader/entries/a.conf": "title A\nlinux /vmlinuz-1\n",
				"loader/entries/b.conf": "-> a.conf", "loader/entries/c.conf.bak": "title C\nlinux /vmlinuz-1\n",
				"vmlinuz-1": "",
			},
			want: []string{"A|elf|kernel /vmlinuz-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, got := scanLines(t, tree(t, tt.files), Options{})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries %q, want %q (skipped %v)", got, tt.want, r.Skipped)
			}
			if tt.skip != "" && (len(r.Skipped) != 1 || r.Skipped[0].Reason != tt.skip) {
				t.Errorf("skipped %v, want %q", r.Skipped, tt.skip)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	if _, err := Scan(filepath.Join(t.TempDir(), "nonexistent"), nil); err == nil {
		t.Error("Scan of a missing directory: no error")
	}
	if _, err := Scan(t.TempDir(), &Options{Pattern: "[grub"}); err == nil {
		t.Error("Scan with a bad pattern: no error")
	}
	// An oversized config is refused with a warning naming it.
	dir := tree(t, map[string]string{"grub/grub.cfg": strings.Repeat("#", maxConfigSize+1)})
	r, err := Scan(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Warnings) != 1 || r.Warnings[0].Source != "/grub/grub.cfg" || !strings.Contains(r.Warnings[0].Msg, "larger than") {
		t.Errorf("warnings %v", r.Warnings)
	}
}

func TestScanDiskOrder(t *testing.T) {
	// Without Sorted, Scan lists directories in on-disk order like find;
	// the set of entries is the same.
	dir := filepath.Join("testdata", "fedora32")
	r1, err := Scan(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, sorted := scanLines(t, dir, Options{})
	got := lines(r1)
	slices.Sort(got)
	slices.Sort(sorted)
	if !reflect.DeepEqual(got, sorted) || len(got) != 3 {
		t.Errorf("disk order gives %q, sorted gives %q", got, sorted)
	}
}
