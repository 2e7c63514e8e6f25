package bootentry

import (
	"path"
	"strings"
)

// ParseSyslinux reads a SYSLINUX, ISOLINUX or EXTLINUX configuration as
// Heads' kexec-parse-boot.sh does: `label` opens an entry, `menu label`
// renames it ('^' hotkey markers removed), `kernel`/`linux` name the kernel,
// `initrd` and `append` complete it, `initrd=` inside append is lifted out
// when there is no `initrd` line (a comma list gives several initrds), a
// `mboot.c32` kernel makes a Xen entry whose append is split on " --- "
// (hypervisor, then modules), and any other `.c32` module (menus, chain,
// hdt...) is skipped. Relative paths are taken relative to the config's
// directory. name is the config's path relative to the partition root.
//
// Differences from Heads, on purpose: keywords are case-insensitive, as in
// SYSLINUX (Heads knows only "label" and "LABEL"); an entry ends at the next
// `label` or `menu begin`/`menu end`, not at a blank line (Heads drops
// whatever follows a blank line inside a label); TEXT HELP ... ENDTEXT
// blocks are skipped; `com32`, `localboot`, `config` and friends skip the
// entry with a reason instead of leaving it without a kernel.
// `include` is not followed: Heads scans every *.cfg on the medium instead,
// and so does Scan with Pattern "*.cfg".
func ParseSyslinux(name string, data []byte) *Result {
	res := &Result{}
	if strings.IndexByte(string(data), 0) >= 0 {
		res.warn(name, 0, "contains NUL bytes: not a text configuration; ignored")
		return res
	}
	sp := syslinuxParser{name: name, dir: configDir(name), res: res}
	inText := false
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		kw := strings.ToLower(f[0])
		if inText {
			inText = kw != "endtext"
			continue
		}
		rest := strings.Join(f[1:], " ") // white space collapsed, as Heads' `echo $line`
		switch kw {
		case "label":
			sp.finish()
			sp.cur = &sysEntry{name: rest, line: n}
		case "menu":
			if len(f) < 2 {
				continue
			}
			switch strings.ToLower(f[1]) {
			case "label":
				if sp.cur != nil {
					sp.cur.name = strings.ReplaceAll(strings.Join(f[2:], " "), "^", "")
				}
			case "begin", "end":
				sp.finish()
			}
		case "text":
			inText = len(f) > 1 && strings.ToLower(f[1]) == "help"
		case "kernel", "linux":
			if sp.cur != nil {
				sp.cur.kernel = rest
				sp.cur.kernelLine = n
			}
		case "initrd":
			if sp.cur != nil {
				sp.cur.initrd = rest
			}
		case "append":
			if sp.cur != nil {
				if rest == "-" { // SYSLINUX: explicitly no append
					rest = ""
				}
				sp.cur.appendv = rest
			}
		case "com32", "localboot", "config", "pxe", "fdimage", "comboot", "bss", "boot":
			if sp.cur != nil {
				sp.cur.other = kw
			}
		}
	}
	sp.finish()
	return res
}

type sysEntry struct {
	name       string
	line       int
	kernel     string // the rest of the kernel/linux line
	kernelLine int
	initrd     string
	appendv    string
	other      string // non-Linux keyword
}

type syslinuxParser struct {
	name string
	dir  string
	res  *Result
	cur  *sysEntry
}

// fix is Heads' fix_path: a relative path is relative to the config's
// directory. The text is kept as Heads writes it ("/isolinux/../live/x").
func (sp *syslinuxParser) fix(p string) string {
	if p == "" || strings.HasPrefix(p, "/") {
		return p
	}
	return sp.dir + "/" + p
}

func (sp *syslinuxParser) finish() {
	c := sp.cur
	sp.cur = nil
	if c == nil {
		return
	}
	name := CleanName(c.name)
	skip := func(format string, args ...any) {
		sp.res.skip(name, sp.name, c.line, format, args...)
	}
	if c.other != "" {
		skip("uses %s, which kexec cannot start", strings.ToUpper(c.other))
		return
	}
	e := Entry{Name: name, Kind: KindELF, Source: sp.name, Line: c.line}
	kpath, kargs, _ := strings.Cut(c.kernel, " ")
	base := strings.ToLower(path.Base(kpath))
	switch {
	case kpath == "":
		skip("no kernel")
		return
	case base == "mboot.c32":
		// Xen: APPEND xen.gz <xen args> --- vmlinuz <dom0 args> --- initrd.img
		e.Kind = KindXen
		if c.appendv == "" {
			skip("mboot.c32 without APPEND naming the hypervisor")
			return
		}
		for i, piece := range strings.Split(c.appendv, " --- ") {
			p, args, _ := strings.Cut(strings.TrimSpace(piece), " ")
			if i == 0 {
				e.Kernel, e.KernelArgs = sp.fix(p), args
				continue
			}
			e.Modules = append(e.Modules, Module{Path: sp.fix(p), Args: args})
		}
	case strings.HasSuffix(base, ".c32"):
		skip("kernel %s is a SYSLINUX module, not a Linux kernel", kpath)
		return
	default:
		e.Kernel, e.KernelArgs = sp.fix(kpath), kargs
		initrd, appendv := c.initrd, c.appendv
		if initrd == "" {
			// Lift initrd= out of the append line (the last one wins).
			var keep []string
			for _, w := range strings.Fields(appendv) {
				if v, ok := strings.CutPrefix(w, "initrd="); ok {
					initrd = v
					continue
				}
				keep = append(keep, w)
			}
			appendv = strings.Join(keep, " ")
		}
		for _, p := range strings.FieldsFunc(initrd, func(r rune) bool { return r == ',' || r == ' ' }) {
			e.Initrds = append(e.Initrds, sp.fix(p))
		}
		e.Append = appendv
	}
	if err := e.Validate(); err != nil {
		skip("%v", err)
		return
	}
	sp.res.Entries = append(sp.res.Entries, e)
}
