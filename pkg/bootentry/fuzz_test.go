package bootentry

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// seedConfigs adds every config of the golden trees whose name passes keep.
func seedConfigs(f *testing.F, keep func(path string) bool) {
	f.Helper()
	err := filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !keep(p) {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
}

// checkResult holds for every parser: valid entries that survive the line
// format unchanged, and problems that name the file and a line inside it.
func checkResult(t *testing.T, name string, data []byte, r *Result) {
	t.Helper()
	nlines := strings.Count(string(data), "\n") + 1
	for _, e := range r.Entries {
		if err := e.Validate(); err != nil {
			t.Fatalf("invalid entry %#v: %v", e, err)
		}
		line := e.String()
		back, err := ParseLine(line)
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", line, err)
		}
		if back.String() != line {
			t.Fatalf("line not stable: %q -> %q", line, back.String())
		}
		if e.Source != name || e.Line < 1 || e.Line > nlines {
			t.Fatalf("entry %q from %s:%d, file has %d lines", line, e.Source, e.Line, nlines)
		}
	}
	for _, s := range r.Skipped {
		if s.Source != name || s.Line < 1 || s.Line > nlines || s.Reason == "" {
			t.Fatalf("skipped %v: want %s, a line in 1..%d and a reason", s, name, nlines)
		}
	}
	if len(r.Warnings) > maxWarnings+1 {
		t.Fatalf("%d warnings", len(r.Warnings))
	}
	for _, w := range r.Warnings {
		if w.Source != name || w.Line < 0 || w.Line > nlines {
			t.Fatalf("warning %v: want %s and a line in 0..%d", w, name, nlines)
		}
	}
}

func FuzzParseGrub(f *testing.F) {
	seedConfigs(f, func(p string) bool { return strings.HasSuffix(p, "grub.cfg") })
	f.Add([]byte("set a=$a$a\nmenuentry \"$a\" { linux /k $a ${a} \"$a\"; initrd ($root)/i; }"))
	f.Add([]byte("submenu s { menuentry m { multiboot2 /x a $u; module2 --nounzip /m b $u; module2 /i; } }"))
	env := map[string]string{"kernelopts": "root=/dev/sda1 ro", "x": "a b"}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "/grub/grub.cfg"
		r := ParseGrub(name, data, env)
		checkResult(t, name, data, r)
	})
}

func FuzzParseSyslinux(f *testing.F) {
	seedConfigs(f, func(p string) bool {
		return strings.HasSuffix(p, ".cfg") && !strings.HasSuffix(p, "grub.cfg")
	})
	f.Add([]byte("label a\n kernel mboot.c32\n append x --- y --- z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "/isolinux/isolinux.cfg"
		r := ParseSyslinux(name, data)
		checkResult(t, name, data, r)
	})
}

func FuzzParseBLS(f *testing.F) {
	seedConfigs(f, func(p string) bool { return strings.HasSuffix(p, ".conf") })
	f.Add([]byte("title t\nlinux /k\ninitrd /a /b $tuned_initrd\noptions $kernelopts ${x}\n"))
	vars := map[string]string{"kernelopts": "root=/dev/sda1 ro", "x": "a|b"}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "/loader/entries/x.conf"
		r := ParseBLS(name, data, vars)
		checkResult(t, name, data, r)
		if len(r.Entries)+len(r.Skipped) > 1 {
			t.Fatalf("one file gave %d entries", len(r.Entries)+len(r.Skipped))
		}
	})
}

func FuzzParseLine(f *testing.F) {
	for _, l := range []string{headsDebian, headsArch, headsMemtst, headsQubes, headsXenISO,
		"|elf|kernel /k", "a|multiboot|kernel /m|module /x y ", "a|elf|kernel /k|initrd /i|append a --- b"} {
		f.Add(l)
	}
	heads, _ := filepath.Glob(filepath.Join("testdata", "*.heads"))
	for _, h := range heads {
		b, err := os.ReadFile(h)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseLine(s)
		if err != nil {
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("ParseLine(%q) accepted an invalid entry: %v", s, err)
		}
		line := e.String()
		if strings.ContainsAny(line, "\n\x00") {
			t.Fatalf("String() = %q", line)
		}
		back, err := ParseLine(line)
		if err != nil {
			t.Fatalf("ParseLine(String()) of %q: %v", line, err)
		}
		if back.String() != line {
			t.Fatalf("not stable: %q -> %q", line, back.String())
		}
		// Only canonical lines are accepted, and they come back byte for byte.
		if line != strings.TrimSuffix(s, "\n") {
			t.Fatalf("ParseLine accepted %q, which String writes as %q", s, line)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("round trip of %q changed the entry: %#v -> %#v", s, e, back)
		}
		for _, d := range Dedupe([]Entry{e, back}) {
			if err := d.Validate(); err != nil {
				t.Fatalf("Dedupe made %q invalid: %v", d.String(), err)
			}
		}
	})
}

func FuzzParseGrubenv(f *testing.F) {
	seedConfigs(f, func(p string) bool { return strings.HasSuffix(p, "grubenv") })
	f.Fuzz(func(t *testing.T, data []byte) {
		for k := range ParseGrubenv(data) {
			if !validVarName(k) {
				t.Fatalf("variable name %q", k)
			}
		}
	})
}
