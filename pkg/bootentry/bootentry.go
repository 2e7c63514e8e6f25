// Package bootentry turns an operating system's boot configuration on a
// mounted /boot (GRUB grub.cfg, SYSLINUX/ISOLINUX *.cfg, BootLoaderSpec
// loader/entries/*.conf) into Heads' boot-entry lines:
//
//	name|elf|kernel <path>[ <args>]|initrd <path>|append <cmdline>
//	name|xen|kernel <xen.gz> <xen args>|module <vmlinuz> <dom0 args>|module <initramfs>
//
// It replaces Heads' initrd/bin/kexec-parse-boot.sh and kexec-parse-bls.sh.
// The line is what /boot/kexec_default.N.txt stores and signs, and a saved
// default is honoured only when the fresh parse yields the identical line, so
// for the configurations distributions write the output matches Heads byte for
// byte: paths are relative to the root of the mounted partition with a leading
// '/', fields are separated by '|' with no spaces around it, words by single
// spaces, `initrd` may repeat, `append` is left out when empty.
//
// Where Heads is wrong this package does better, and says so where it does:
//   - Heads runs every entry line through `eval`, so `$(...)` or backquotes in
//     a grub.cfg (or on a USB stick) run in the firmware. Here configuration text
//     is never evaluated: GRUB variables set in the config (or grubenv) are
//     expanded by a small GRUB-script reader, other `$var` expand to nothing (as
//     in Heads) with a warning, and anything else stays literal text.
//   - One entry whose kernel or initrd is missing aborts Heads' parser (set -e)
//     and hides every later entry. Here that entry alone is skipped, with the
//     reason, in Result.Skipped.
//   - Heads strips the text "/boot" from BootLoaderSpec paths, which breaks
//     single-partition layouts. Here paths are resolved against the mounted
//     partition (see Scan).
//
// Use: Scan a mounted partition; Result.Entries is the menu, in Heads'
// order, so a default saved as kexec_default.N.txt is honoured only if
// Result.Entries[N-1].String() equals its line. ParseLine reads such a line
// back; Entry.Files lists what kexec_default_hashes.txt must cover; Dedupe
// is kexec-select-boot.sh -u for USB media. Result.Skipped says why an entry
// found in a config is not offered, and Result.Warnings what was not
// understood; both name the file and line.
package bootentry

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Kind is the second field of an entry line: how kexec loads the kernel.
type Kind string

const (
	// KindELF is a Linux kernel (bzImage) with optional initrds and command line.
	KindELF Kind = "elf"
	// KindXen is a multiboot hypervisor (Xen) with the dom0 kernel and its
	// initramfs as modules. Heads writes it for every GRUB multiboot/multiboot2
	// entry and every SYSLINUX mboot.c32 entry.
	KindXen Kind = "xen"
	// KindMultiboot is a generic multiboot kernel. Heads' kexec-boot knows it
	// but its parsers never write it; ParseLine accepts it.
	KindMultiboot Kind = "multiboot"
)

// Module is one multiboot module: a file and the command line passed with it.
type Module struct {
	Path string // relative to the partition root, with a leading '/'
	Args string // may be empty
}

// Entry is one bootable entry.
type Entry struct {
	// Name is the menu title ('|' and control characters removed, runs of
	// white space collapsed, as Heads does).
	Name string
	Kind Kind
	// Kernel is the kernel (or hypervisor) path relative to the root of the
	// mounted partition, with a leading '/'.
	Kernel string
	// KernelArgs is written after the kernel path: the hypervisor's command
	// line for Xen; normally empty for ELF. Arguments (here and in modules)
	// may end with one space where Heads' line has one (an unset variable at
	// the end of a multiboot line, as in Qubes' grub.cfg).
	KernelArgs string
	// Initrds are loaded in order (ELF only).
	Initrds []string
	// Modules are multiboot modules (Xen: the dom0 kernel with its command
	// line, then the initramfs).
	Modules []Module
	// Append is the kernel command line (ELF only).
	Append string

	// Submenu names the GRUB submenus that hold the entry, joined by '>' as
	// GRUB's saved_entry does; empty at top level. Not part of the line.
	Submenu string
	// RootUUID is the filesystem UUID the entry selects with GRUB's
	// `search --fs-uuid --set=root`; empty when it does not. Not part of the line.
	RootUUID string
	// Source is the configuration file the entry came from, relative to the
	// partition root (or the name given to a Parse function), and Line the
	// line of its first keyword. Not part of the line.
	Source string
	Line   int
}

// Skipped is an entry that was found but cannot be offered, and why.
type Skipped struct {
	Name   string
	Source string
	Line   int
	Reason string
}

func (s Skipped) String() string {
	return fmt.Sprintf("%s:%d: %q: %s", s.Source, s.Line, s.Name, s.Reason)
}

// Warning is a non-fatal remark about a configuration file: syntax errors
// that were recovered from, variables that could not be expanded, files that
// were not read.
type Warning struct {
	Source string
	Line   int // 0 when it concerns the whole file
	Msg    string
}

func (w Warning) String() string {
	if w.Line == 0 {
		return fmt.Sprintf("%s: %s", w.Source, w.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", w.Source, w.Line, w.Msg)
}

// Result is what a parse produced: the entries in menu order, the entries
// that were dropped and the remarks.
type Result struct {
	Entries  []Entry
	Skipped  []Skipped
	Warnings []Warning

	nwarn map[string]int // warnings per source, to bound hostile input
}

// maxWarnings bounds the warnings kept per file: a file of 4 MiB of '}'
// would otherwise yield millions.
const maxWarnings = 100

func (r *Result) warn(src string, line int, format string, args ...any) {
	if r.nwarn == nil {
		r.nwarn = map[string]int{}
	}
	r.nwarn[src]++
	switch n := r.nwarn[src]; {
	case n == maxWarnings+1:
		r.Warnings = append(r.Warnings, Warning{Source: src, Line: line, Msg: fmt.Sprintf("more than %d warnings; the rest are not shown", maxWarnings)})
		return
	case n > maxWarnings:
		return
	}
	r.Warnings = append(r.Warnings, Warning{Source: src, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (r *Result) skip(name, src string, line int, format string, args ...any) {
	r.Skipped = append(r.Skipped, Skipped{Name: name, Source: src, Line: line, Reason: fmt.Sprintf(format, args...)})
}

func (r *Result) merge(o *Result) {
	r.Entries = append(r.Entries, o.Entries...)
	r.Skipped = append(r.Skipped, o.Skipped...)
	r.Warnings = append(r.Warnings, o.Warnings...)
	for k, v := range o.nwarn {
		if r.nwarn == nil {
			r.nwarn = map[string]int{}
		}
		r.nwarn[k] += v
	}
}

// String returns the Heads entry line (without a trailing newline). It assumes
// e.Validate() == nil; the parsers of this package only return valid entries.
func (e Entry) String() string {
	var b strings.Builder
	b.WriteString(CleanName(e.Name))
	b.WriteByte('|')
	b.WriteString(string(e.Kind))
	b.WriteString("|kernel ")
	b.WriteString(e.Kernel)
	if e.KernelArgs != "" {
		b.WriteByte(' ')
		b.WriteString(e.KernelArgs)
	}
	for _, p := range e.Initrds {
		b.WriteString("|initrd ")
		b.WriteString(p)
	}
	for _, m := range e.Modules {
		b.WriteString("|module ")
		b.WriteString(m.Path)
		if m.Args != "" {
			b.WriteByte(' ')
			b.WriteString(m.Args)
		}
	}
	if e.Append != "" {
		b.WriteString("|append ")
		b.WriteString(e.Append)
	}
	// Heads' `echo $(...)` trims the end of the line, so a trailing space
	// kept in the last field's arguments disappears there.
	return strings.TrimRight(b.String(), " ")
}

// Files lists the files the entry loads, in load order: kernel, initrds,
// modules. These are what kexec_default_hashes.txt must cover.
func (e Entry) Files() []string {
	fs := []string{e.Kernel}
	fs = append(fs, e.Initrds...)
	for _, m := range e.Modules {
		fs = append(fs, m.Path)
	}
	return fs
}

// ErrBadLine is returned (wrapped) by ParseLine and Validate for text that is
// not a well-formed entry line.
var ErrBadLine = errors.New("malformed boot entry line")

// Validate reports whether the entry can be written as one entry line and
// read back by ParseLine: known kind, absolute paths without white space,
// '|' or control characters, arguments without '|' or control characters,
// ELF entries without modules and multiboot entries without initrds or append.
func (e Entry) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadLine, fmt.Sprintf(format, args...))
	}
	switch e.Kind {
	case KindELF:
		if len(e.Modules) > 0 {
			return bad("elf entry with module fields")
		}
	case KindXen, KindMultiboot:
		if len(e.Initrds) > 0 || e.Append != "" {
			return bad("%s entry with initrd or append fields (use modules)", e.Kind)
		}
	default:
		return bad("unknown kind %q (want elf, xen or multiboot)", e.Kind)
	}
	if err := checkPath("kernel", e.Kernel); err != nil {
		return bad("%v", err)
	}
	if err := checkArgs("kernel arguments", e.KernelArgs); err != nil {
		return bad("%v", err)
	}
	for _, p := range e.Initrds {
		if err := checkPath("initrd", p); err != nil {
			return bad("%v", err)
		}
	}
	for _, m := range e.Modules {
		if err := checkPath("module", m.Path); err != nil {
			return bad("%v", err)
		}
		if err := checkArgs("module arguments", m.Args); err != nil {
			return bad("%v", err)
		}
	}
	if err := checkArgs("append", e.Append); err != nil {
		return bad("%v", err)
	}
	return nil
}

// checkPath accepts what the line format can carry as a path and what a
// kexec loader may open below the partition root: a leading '/', no white
// space, '|' or control characters, and no ".." that climbs above the root.
func checkPath(what, p string) error {
	if p == "" {
		return fmt.Errorf("empty %s path", what)
	}
	if p[0] != '/' {
		return fmt.Errorf("%s path %q is not absolute", what, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c == 0x7f || c == '|' {
			return fmt.Errorf("%s path %q contains white space, '|' or a control character", what, p)
		}
	}
	if escapesRoot(p) {
		return fmt.Errorf("%s path %q climbs above the partition root", what, p)
	}
	return nil
}

// checkArgs accepts a command line: single spaces between words are fine
// (and so are spaces inside GRUB-quoted words), '|' and control characters
// are not, nor white space at either end (it would not survive the line).
func checkArgs(what, s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f || c == '|' {
			return fmt.Errorf("%s %q contains '|', a tab or a control character", what, s)
		}
	}
	// One trailing space is Heads' trace of a variable that expanded to
	// nothing at the end of a multiboot line; see grubReader.cmdline.
	if strings.HasPrefix(s, " ") || strings.HasSuffix(s, "  ") || s == " " {
		return fmt.Errorf("%s %q starts with white space or ends with more than one space", what, s)
	}
	return nil
}

// escapesRoot reports whether a '/'-rooted path climbs above its root with "..".
func escapesRoot(p string) bool {
	depth := 0
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// CleanName makes a title safe for the line and the screen the way Heads
// does (`tr -d '|'`, then the shell's word splitting collapses white space
// and trims the start), and also removes control characters, which Heads
// keeps: an escape sequence in a title could redraw the firmware's menu.
func CleanName(s string) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		raw := s[i : i+size]
		i += size
		switch {
		case r == '|':
			continue
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			space = true
			continue
		case r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0):
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		// Invalid UTF-8 is kept byte for byte, as Heads keeps it.
		b.WriteString(raw)
	}
	// Heads keeps one space before the '|' when a title ends in white space
	// ("Foo |elf|..."), because only the start of the whole line is trimmed.
	if space && b.Len() > 0 {
		b.WriteByte(' ')
	}
	return b.String()
}

// ParseLine parses an entry line, as stored in kexec_default.N.txt, back into
// an Entry. One trailing newline is accepted. The file is signed, but the
// parser still treats it as untrusted: anything but the exact field layout
// that String writes is an error.
func ParseLine(s string) (Entry, error) {
	s = strings.TrimSuffix(s, "\n")
	bad := func(format string, args ...any) (Entry, error) {
		return Entry{}, fmt.Errorf("%w: %s", ErrBadLine, fmt.Sprintf(format, args...))
	}
	if strings.ContainsAny(s, "\n\r\x00") {
		return bad("line contains a newline or NUL")
	}
	fields := strings.Split(s, "|")
	if len(fields) < 3 {
		return bad("%d fields, want at least name|kind|kernel", len(fields))
	}
	var e Entry
	e.Name = fields[0]
	if CleanName(e.Name) != e.Name {
		return bad("name %q has control characters or unnormalised white space", e.Name)
	}
	e.Kind = Kind(fields[1])
	k, ok := strings.CutPrefix(fields[2], "kernel ")
	if !ok {
		return bad("third field %q does not start with \"kernel \"", fields[2])
	}
	e.Kernel, e.KernelArgs, _ = strings.Cut(k, " ")
	for i, f := range fields[3:] {
		key, val, _ := strings.Cut(f, " ")
		switch key {
		case "initrd":
			if strings.Contains(val, " ") {
				return bad("field %d: initrd %q holds more than one word", i+4, val)
			}
			if e.Append != "" {
				return bad("field %d: initrd after append", i+4)
			}
			e.Initrds = append(e.Initrds, val)
		case "module":
			var m Module
			m.Path, m.Args, _ = strings.Cut(val, " ")
			e.Modules = append(e.Modules, m)
		case "append":
			if e.Append != "" {
				return bad("field %d: second append", i+4)
			}
			if val == "" {
				return bad("field %d: empty append", i+4)
			}
			e.Append = val
		default:
			return bad("field %d: %q is not initrd, module or append", i+4, f)
		}
	}
	if err := e.Validate(); err != nil {
		return Entry{}, err
	}
	// One spelling per entry: what String writes. Stray spaces (a space
	// before '|' that is not Heads' pad, one at the end) are refused rather
	// than normalised, so the line compared is the line booted.
	if got := e.String(); got != s {
		return bad("not in canonical form (it would be written %q)", got)
	}
	return e, nil
}

// Dedupe keeps the first entry of each name, as kexec-select-boot.sh -u does
// for USB media. Like Heads it first cuts an append at its last "---" (the
// Debian installer marker), so entries that differ only after it collapse;
// unlike Heads it then trims the space left before the cut, so the line stays
// canonical.
func Dedupe(entries []Entry) []Entry {
	seen := map[string]bool{}
	var out []Entry
	for _, e := range entries {
		if i := strings.LastIndex(e.Append, "---"); i >= 0 {
			e.Append = strings.TrimSpace(e.Append[:i])
		}
		n := CleanName(e.Name)
		if seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, e)
	}
	return out
}
