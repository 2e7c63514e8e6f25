package bootentry

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseSyslinux(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		want    []string
		skipped []string
	}{
		{
			name: "initrd= lifted out of append, menu label wins, ^ removed",
			cfg:  "label install\n\tmenu label ^Install\n\tkernel /install.amd/vmlinuz\n\tappend vga=788 initrd=/install.amd/initrd.gz --- quiet \n",
			want: []string{"Install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/initrd.gz|append vga=788 --- quiet"},
		},
		{
			name: "comma list in initrd=, the last initrd= wins (Heads)",
			cfg:  "LABEL live\n  LINUX /live/vmlinuz\n  APPEND initrd=/old.img boot=live initrd=/live/initrd.img,/live/extra.img quiet\n",
			want: []string{"live|elf|kernel /live/vmlinuz|initrd /live/initrd.img|initrd /live/extra.img|append boot=live quiet"},
		},
		{
			name: "explicit INITRD keeps initrd= in append",
			cfg:  "Label x\n Kernel vmlinuz\n Initrd initrd.img\n Append initrd=ignored.img ro\n",
			want: []string{"x|elf|kernel /isolinux/vmlinuz|initrd /isolinux/initrd.img|append initrd=ignored.img ro"},
		},
		{
			name: "relative paths against the config's directory, text kept as Heads writes it",
			cfg:  "label a\n kernel ../live/vmlinuz\n append initrd=../live/initrd.img\n",
			want: []string{"a|elf|kernel /isolinux/../live/vmlinuz|initrd /isolinux/../live/initrd.img"},
		},
		{
			name: "mboot.c32 Xen split on ' --- '",
			cfg:  "label q\n menu label ^Install Qubes\n kernel mboot.c32\n append xen.gz console=none --- vmlinuz inst.stage2=hd:LABEL=Q quiet --- initrd.img\n",
			want: []string{"Install Qubes|xen|kernel /isolinux/xen.gz console=none|module /isolinux/vmlinuz inst.stage2=hd:LABEL=Q quiet|module /isolinux/initrd.img"},
		},
		{
			name: "APPEND before KERNEL mboot.c32 still splits",
			cfg:  "label q\n append /xen.gz --- /vmlinuz --- /initrd.img\n kernel /isolinux/mboot.c32\n",
			want: []string{"q|xen|kernel /xen.gz|module /vmlinuz|module /initrd.img"},
		},
		{
			name: "other modules and keywords are skipped with a reason",
			cfg: "label hdt\n kernel hdt.c32\nlabel local\n localboot 0\nlabel chain\n com32 chain.c32\n append hd0\n" +
				"label menu\n kernel vesamenu.c32\n config isolinux.cfg\nlabel back\n menu label Back\n menu exit\n" +
				"label xen\n kernel mboot.c32\n",
			skipped: []string{"SYSLINUX module", "LOCALBOOT", "COM32", "CONFIG", "no kernel", "mboot.c32 without APPEND"},
		},
		{
			name: "TEXT HELP blocks are skipped; a blank line does not end a label",
			cfg:  "label a\n text help\n label fake\n kernel /fake\n endtext\n\n kernel /vmlinuz\n append -\n",
			want: []string{"a|elf|kernel /vmlinuz"},
		},
		{
			name: "MENU BEGIN/END end the current label; global APPEND is ignored",
			cfg:  "append global=1\nlabel a\n kernel /k1\nmenu begin sub\n append stray=1\nlabel b\n kernel /k2\nmenu end\n",
			want: []string{"a|elf|kernel /k1", "b|elf|kernel /k2"},
		},
		{
			name:    "pipe in an argument, path climbing out",
			cfg:     "label p\n kernel /k\n append a|b\nlabel q\n kernel ../../../etc/passwd\n",
			skipped: []string{"contains '|'", "climbs above"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ParseSyslinux("/isolinux/isolinux.cfg", []byte(tt.cfg))
			if got := lines(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries:\n got %q\nwant %q\nskipped %v", got, tt.want, r.Skipped)
			}
			if len(r.Skipped) != len(tt.skipped) {
				t.Fatalf("skipped %v, want %d matching %q", r.Skipped, len(tt.skipped), tt.skipped)
			}
			for i, s := range r.Skipped {
				if !strings.Contains(s.Reason, tt.skipped[i]) || s.Line < 1 || s.Source != "/isolinux/isolinux.cfg" {
					t.Errorf("skipped[%d] = %v, want reason containing %q with file and line", i, s, tt.skipped[i])
				}
			}
		})
	}
}

func TestParseSyslinuxAtRoot(t *testing.T) {
	// A config at the medium's root: Heads' appenddir is empty, paths get "/".
	r := ParseSyslinux("/syslinux.cfg", []byte("label a\n kernel vmlinuz\n initrd initrd.img\n"))
	if got, want := lines(r), []string{"a|elf|kernel /vmlinuz|initrd /initrd.img"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
