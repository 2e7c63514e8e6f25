package bootentry

import (
	"reflect"
	"strings"
	"testing"
)

func lines(r *Result) []string {
	var out []string
	for _, e := range r.Entries {
		out = append(out, e.String())
	}
	return out
}

func TestParseGrub(t *testing.T) {
	tests := []struct {
		name    string
		cfg     string
		env     map[string]string
		want    []string
		skipped []string // reasons, in order (substring match)
	}{
		{
			name: "plain entry, tabs and double spaces collapse as in Heads",
			cfg:  "menuentry 'Debian GNU/Linux' --class debian {\n\tlinux\t/vmlinuz root=/dev/sda1 ro  quiet\n\tinitrd\t/initrd.img\n}\n",
			want: []string{"Debian GNU/Linux|elf|kernel /vmlinuz|initrd /initrd.img|append root=/dev/sda1 ro quiet"},
		},
		{
			name: "options before the title, one-line entry",
			cfg:  "menuentry --hotkey=g --class os 'Graphical install' { linux /install.amd/vmlinuz vga=788 --- quiet; initrd /install.amd/gtk/initrd.gz; }",
			want: []string{"Graphical install|elf|kernel /install.amd/vmlinuz|initrd /install.amd/gtk/initrd.gz|append vga=788 quiet"},
		},
		{
			name: "linux16/linuxefi/initrdefi, several initrds",
			cfg:  "menuentry a {\n linux16 /k16\n initrd16 /i16\n}\nmenuentry b {\n linuxefi /ke ro\n initrdefi /ucode.img /initramfs.img\n}\n",
			want: []string{"a|elf|kernel /k16|initrd /i16", "b|elf|kernel /ke|initrd /ucode.img|initrd /initramfs.img|append ro"},
		},
		{
			name: "device prefixes dropped",
			cfg:  "menuentry a {\n linux (hd0,gpt2)/vmlinuz ro\n initrd ($root)/initrd.img (hd1)/second.img\n}\n",
			want: []string{"a|elf|kernel /vmlinuz|initrd /initrd.img|initrd /second.img|append ro"},
		},
		{
			name: "relative paths against the config's directory, as Heads' fix_path",
			cfg:  "menuentry a {\n linux vmlinuz ro\n initrd initrd.img\n}\n",
			want: []string{"a|elf|kernel /grub/vmlinuz|initrd /grub/initrd.img|append ro"},
		},
		{
			name: "the last linux/initrd wins, also inside if/else (as Heads)",
			cfg:  "menuentry a {\n if [ $grub_platform = efi ]; then\n  linux /efi-k\n else\n  linux /bios-k ro\n fi\n initrd /i\n}\n",
			want: []string{"a|elf|kernel /bios-k|initrd /i|append ro"},
		},
		{
			name: "Xen: multiboot2 + module2 --nounzip, Heads' pad before '|'",
			cfg: "menuentry 'Qubes' {\n if [ x = y ]; then xen_rm_opts=; else xen_rm_opts=\"no-real-mode edd=off\"; fi\n" +
				"\tmultiboot2\t/xen.gz placeholder  console=none ${xen_rm_opts}\n" +
				"\tmodule2\t/vmlinuz placeholder root=/dev/mapper/qubes_dom0-root ro\n" +
				"\tmodule2 --nounzip   /initramfs.img\n}\n",
			want: []string{"Qubes|xen|kernel /xen.gz placeholder console=none |module /vmlinuz placeholder root=/dev/mapper/qubes_dom0-root ro|module /initramfs.img"},
		},
		{
			name: "multiboot v1 + module, empty-variable tail on a middle module",
			cfg:  "menuentry x {\n multiboot /xen.gz dom0_mem=1G\n module /vmlinuz ro $unset\n module /initrd.img\n}\n",
			want: []string{"x|xen|kernel /xen.gz dom0_mem=1G|module /vmlinuz ro |module /initrd.img"},
		},
		{
			name: "variables: unconditional top-level set, final value, entry-local set, grubenv via load_env",
			cfg: "set k=vmlinuz-6.1\nload_env\nset late=early\n" +
				"menuentry \"Linux $k\" {\n set mine=1\n linux /$k a=$late b=${mine} c=$kernelopts\n}\n" +
				"set late=final\n",
			env:  map[string]string{"kernelopts": "root=/dev/sda2 ro"},
			want: []string{"Linux vmlinuz-6.1|elf|kernel /vmlinuz-6.1|append a=final b=1 c=root=/dev/sda2 ro"},
		},
		{
			name: "grubenv is not used without load_env",
			cfg:  "menuentry a {\n linux /k $kernelopts\n}\n",
			env:  map[string]string{"kernelopts": "root=/dev/sda2"},
			want: []string{"a|elf|kernel /k"},
		},
		{
			name: "conditional and function-set variables expand to nothing",
			cfg: "if [ a = b ]; then set v=maybe; fi\nfunction f { set w=never; }\n" +
				"menuentry a {\n f\n linux /k v=$v w=$w $vt_handoff\n}\n",
			want: []string{"a|elf|kernel /k|append v= w="},
		},
		{
			name:    "unknown variable in a path skips the entry only",
			cfg:     "menuentry bad {\n linux /vmlinuz-$ver\n}\nmenuentry good {\n linux /vmlinuz\n}\n",
			want:    []string{"good|elf|kernel /vmlinuz"},
			skipped: []string{"needs $ver"},
		},
		{
			name: "GRUB quoting rebuilt like grub_create_loader_cmdline",
			cfg:  `menuentry q { linux /k "acpi_osi=Windows 2015" 'quiet' a\ b "it's" x="a\"b" "$unset" ""; }`,
			want: []string{`q|elf|kernel /k|append "acpi_osi=Windows 2015" quiet "a b" it\'s x=a\"b`},
		},
		{
			name: "unquoted variable splits into words, quoted does not",
			cfg:  "set o=\"quiet  splash\"\nmenuentry a { linux /k $o \"$o\"; }",
			want: []string{`a|elf|kernel /k|append quiet splash "quiet  splash"`},
		},
		{
			name: "comments, line continuation, semicolons",
			cfg:  "# menuentry 'commented' { linux /x; }\nmenuentry a { # comment\n linux /k one \\\n two # trailing\n}\n",
			want: []string{"a|elf|kernel /k|append one two"},
		},
		{
			name: "nested submenus flatten, titles without the submenu path (as Heads)",
			cfg:  "submenu A {\n submenu B {\n  menuentry C { linux /k; }\n }\n menuentry D { linux /k; }\n}\nmenuentry E { linux /k; }\n",
			want: []string{"C|elf|kernel /k", "D|elf|kernel /k", "E|elf|kernel /k"},
		},
		{
			name: "entries that kexec cannot start",
			cfg: "menuentry W { chainloader /efi/Microsoft/Boot/bootmgfw.efi; }\nmenuentry F { fwsetup; }\n" +
				"menuentry N { echo nothing; }\nmenuentry P { linux /k a|b; }\nmenuentry S { linux \"/my kernel\"; }\n",
			skipped: []string{"chainloader", "fwsetup", "no linux or multiboot", "contains '|'", "white space"},
		},
		{
			name: "shell syntax stays literal",
			cfg:  "menuentry 'x $(reboot)' { linux /k `poweroff` $(id); }",
			want: []string{"x $(reboot)|elf|kernel /k|append `poweroff` $(id)"},
		},
		{
			name: "the menuentry_id_option trap (Heads starts a phantom entry on it) is a plain assignment",
			cfg: "if [ x\"${feature_menuentry_id}\" = xy ]; then\n  menuentry_id_option=\"--id\"\nelse\n  menuentry_id_option=\"\"\nfi\n" +
				"menuentry 'A' $menuentry_id_option 'id-a' { linux /k; }\n",
			want: []string{"A|elf|kernel /k"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ParseGrub("/grub/grub.cfg", []byte(tt.cfg), tt.env)
			if got := lines(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries:\n got %q\nwant %q\nskipped %v\nwarnings %v", got, tt.want, r.Skipped, r.Warnings)
			}
			if len(r.Skipped) != len(tt.skipped) {
				t.Fatalf("skipped %v, want %d matching %q", r.Skipped, len(tt.skipped), tt.skipped)
			}
			for i, s := range r.Skipped {
				if !strings.Contains(s.Reason, tt.skipped[i]) {
					t.Errorf("skipped[%d] = %v, want reason containing %q", i, s, tt.skipped[i])
				}
				if s.Source != "/grub/grub.cfg" || s.Line < 1 {
					t.Errorf("skipped[%d] = %v does not name the file and line", i, s)
				}
			}
		})
	}
}

func TestParseGrubWarningsNameFileAndLine(t *testing.T) {
	cfg := "set a=1\n\nmenuentry x {\n linux /k $nope\n}\nmenuentry y {\n linux /k \"unterminated\n"
	r := ParseGrub("/boot/grub/grub.cfg", []byte(cfg), nil)
	want := []string{
		"/boot/grub/grub.cfg:4: $nope is not set unconditionally in this file; expanded to nothing (as Heads does)",
		"/boot/grub/grub.cfg:7: unterminated double quote; rest of file ignored (GRUB rejects it too)",
	}
	var got []string
	for _, w := range r.Warnings {
		got = append(got, w.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	if len(r.Skipped) != 1 || r.Skipped[0].Line != 6 || r.Skipped[0].Name != "y" {
		t.Errorf("skipped = %v, want y at line 6", r.Skipped)
	}
}

func TestParseGrubHostile(t *testing.T) {
	deep := strings.Repeat("submenu s {\n", 5000) + "menuentry deep { linux /k; }\n" + strings.Repeat("}\n", 5000)
	doubling := "set x=aaaaaaaa\n" + strings.Repeat("set x=$x$x$x$x\n", 40) + "menuentry d { linux /k $x; }\n"
	braces := strings.Repeat("${", 200000) + "\nmenuentry b { linux /k; }\n"
	for name, cfg := range map[string]string{
		"deep nesting":   deep,
		"doubling":       doubling,
		"many ${":        braces,
		"only braces":    strings.Repeat("{", 100000),
		"only closers":   strings.Repeat("}", 100000),
		"NUL":            "menuentry a { linux /k\x00; }",
		"lone quote":     "'",
		"lone dquote":    "\"",
		"lone backslash": "\\",
		"dollar at end":  "menuentry a { linux /k $",
		"if soup":        strings.Repeat("if then elif else fi do done for while until function ", 1000),
	} {
		t.Run(name, func(t *testing.T) {
			r := ParseGrub("/grub.cfg", []byte(cfg), nil)
			for _, e := range r.Entries {
				if err := e.Validate(); err != nil {
					t.Errorf("invalid entry: %v", err)
				}
				if len(e.Append) > 2*maxVarValue+1000 {
					t.Errorf("append of %d bytes escaped the expansion limits", len(e.Append))
				}
			}
		})
	}
	r := ParseGrub("/grub.cfg", []byte(deep), nil)
	if len(r.Entries) != 0 || len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0].Msg, "nested deeper") {
		t.Errorf("deep nesting: entries %v warnings %v, want none and a nesting warning", r.Entries, r.Warnings)
	}
	r = ParseGrub("/grub.cfg", []byte("menuentry a { linux /k\x00; }"), nil)
	if len(r.Entries) != 0 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0].Msg, "NUL") {
		t.Errorf("NUL: entries %v warnings %v", r.Entries, r.Warnings)
	}
}

func TestSearchUUID(t *testing.T) {
	for _, tt := range []struct {
		cmd  string
		args []string
		want string
	}{
		{"search", []string{"--no-floppy", "--fs-uuid", "--set=root", "--hint-bios=hd0,gpt2", "5e2f"}, "5e2f"},
		{"search", []string{"--no-floppy", "--fs-uuid", "--set=root", "5e2f"}, "5e2f"},
		{"search", []string{"-u", "-s", "abcd"}, "abcd"},
		{"search", []string{"--fs-uuid", "--set=boot", "5e2f"}, ""}, // Fedora's $boot
		{"search", []string{"--file", "--set=root", "/vmlinuz"}, ""},
		{"search", []string{"--label", "--set=root", "BOOT"}, ""},
		{"search.fs_uuid", []string{"5e2f", "root"}, "5e2f"},
		{"search.fs_uuid", []string{"5e2f"}, "5e2f"},
		{"search.fs_uuid", []string{"5e2f", "dev"}, ""},
	} {
		if got := searchUUID(tt.cmd, tt.args); got != tt.want {
			t.Errorf("searchUUID(%s %q) = %q, want %q", tt.cmd, tt.args, got, tt.want)
		}
	}
}

func TestParseGrubenv(t *testing.T) {
	data := "# GRUB Environment Block\n# WARNING: Do not edit\nsaved_entry=Ubuntu\\\\x\nkernelopts=root=/dev/sda1 ro quiet \nmulti=a\\\nb\nbad name=1\n" + strings.Repeat("#", 900)
	got := ParseGrubenv([]byte(data))
	want := map[string]string{
		"saved_entry": `Ubuntu\x`,
		"kernelopts":  "root=/dev/sda1 ro quiet ",
		"multi":       "a\nb",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseGrubenv = %q, want %q", got, want)
	}
}
