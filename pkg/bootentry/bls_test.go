package bootentry

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseBLS(t *testing.T) {
	vars := map[string]string{"kernelopts": "root=/dev/mapper/fedora-root ro rhgb quiet ", "tuned_params": "skew_tick=1"}
	tests := []struct {
		name    string
		conf    string
		vars    map[string]string
		want    []string
		skipped string
	}{
		{
			name: "Fedora 32: options $kernelopts",
			conf: "title Fedora (5.8.15-201.fc32.x86_64) 32 (Workstation Edition)\nversion 5.8.15-201.fc32.x86_64\nlinux /vmlinuz-5.8.15-201.fc32.x86_64\ninitrd /initramfs-5.8.15-201.fc32.x86_64.img\noptions $kernelopts\ngrub_users $grub_users\ngrub_arg --unrestricted\ngrub_class kernel\n",
			vars: vars,
			want: []string{"Fedora (5.8.15-201.fc32.x86_64) 32 (Workstation Edition)|elf|kernel /vmlinuz-5.8.15-201.fc32.x86_64|initrd /initramfs-5.8.15-201.fc32.x86_64.img|append root=/dev/mapper/fedora-root ro rhgb quiet"},
		},
		{
			name: "no options: $kernelopts (Heads' default); white space collapsed",
			conf: "title   Spaced    title\nlinux\t/vmlinuz\n",
			vars: vars,
			want: []string{"Spaced title|elf|kernel /vmlinuz|append root=/dev/mapper/fedora-root ro rhgb quiet"},
		},
		{
			name: "several initrd keys and words, several options, grubenv variables, ${name}",
			conf: "title t\nlinux /vmlinuz\ninitrd /intel-ucode.img\ninitrd /initramfs.img $tuned_initrd\noptions ${kernelopts}\noptions $tuned_params\n",
			vars: vars,
			want: []string{"t|elf|kernel /vmlinuz|initrd /intel-ucode.img|initrd /initramfs.img|append root=/dev/mapper/fedora-root ro rhgb quiet skew_tick=1"},
		},
		{
			name: "relative paths are relative to the partition root; no title: file name",
			conf: "linux vmlinuz\ninitrd initrd.img\noptions ro\n",
			want: []string{"machine-1|elf|kernel /vmlinuz|initrd /initrd.img|append ro"},
		},
		{
			name: "'@' in kernelopts kept (Heads turns it into '_')",
			conf: "title t\nlinux /vmlinuz\n",
			vars: map[string]string{"kernelopts": "root=ZFS=rpool/ROOT@snap"},
			want: []string{"t|elf|kernel /vmlinuz|append root=ZFS=rpool/ROOT@snap"},
		},
		{
			name:    "EFI program",
			conf:    "title Windows\nefi /EFI/Microsoft/Boot/bootmgfw.efi\n",
			skipped: "EFI program",
		},
		{
			name:    "no linux",
			conf:    "title nothing\nversion 1\n",
			skipped: "no linux key",
		},
		{
			name:    "pipe in options",
			conf:    "title p\nlinux /vmlinuz\noptions a|b\n",
			skipped: "contains '|'",
		},
		{
			name: "shell syntax is text",
			conf: "title $(reboot)\nlinux /vmlinuz\noptions `id` $(id)\n",
			want: []string{"$(reboot)|elf|kernel /vmlinuz|append `id` $(id)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ParseBLS("/loader/entries/machine-1.conf", []byte(tt.conf), tt.vars)
			if got := lines(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries:\n got %q\nwant %q\nskipped %v", got, tt.want, r.Skipped)
			}
			if tt.skipped == "" {
				if len(r.Skipped) != 0 {
					t.Errorf("skipped %v", r.Skipped)
				}
				return
			}
			if len(r.Skipped) != 1 || !strings.Contains(r.Skipped[0].Reason, tt.skipped) || r.Skipped[0].Line < 1 {
				t.Errorf("skipped %v, want one with reason containing %q", r.Skipped, tt.skipped)
			}
		})
	}
}

func TestParseBLSExpansionBounded(t *testing.T) {
	big := strings.Repeat("x", 1<<20)
	conf := "title t\nlinux /vmlinuz\noptions " + strings.Repeat("$kernelopts ", 100) + "\n"
	r := ParseBLS("/loader/entries/a.conf", []byte(conf), map[string]string{"kernelopts": big})
	if len(r.Entries) != 1 {
		t.Fatalf("entries %v skipped %v", r.Entries, r.Skipped)
	}
	if n := len(r.Entries[0].Append); n > maxExpandBudget+1000 {
		t.Errorf("append grew to %d bytes", n)
	}
	if len(r.Warnings) == 0 {
		t.Errorf("no warning about the variables left unexpanded")
	}
}
