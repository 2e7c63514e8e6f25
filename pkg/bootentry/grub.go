package bootentry

import (
	"path"
	"slices"
	"strconv"
	"strings"
)

// This file reads GRUB 2 script (grub.cfg, loopback.cfg) without running it.
//
// Heads' kexec-parse-boot.sh reads grub.cfg line by line, takes the text after
// `linux` verbatim and finally passes the whole entry through `eval "echo ..."`,
// so `$(...)` in a title or argument runs in the firmware and every `$var`
// becomes whatever the firmware's shell has (usually nothing). Here the file
// is tokenised with GRUB's own quoting rules ('...', "...", \, $var, ${var})
// and nothing in it is ever executed:
//
//   - A variable is "known" when the config sets it unconditionally (`set x=y`
//     or `x=y` outside if/for/while and functions, or inside the entry before
//     use), or when `load_env` loads it from grubenv. Known variables expand as
//     GRUB would expand them at boot: entries see the value at the end of the
//     file. Submenus see every variable, as with Fedora's GRUB (upstream GRUB
//     passes only exported ones; generated configs do not depend on it).
//   - Any other variable expands to nothing, which is what Heads' eval gives,
//     so the line stays identical to Heads' for configs like Ubuntu's
//     `$vt_handoff`; a warning names it. A kernel or initrd path that needs
//     an unknown variable cannot be found and its entry is skipped.
//   - `$(`, backquotes and everything else GRUB does not expand stay literal
//     text, with a warning.
//
// The kernel command line is rebuilt from the expanded words the way GRUB's
// grub_create_loader_cmdline does (a word holding a space is double-quoted,
// quotes and backslashes are escaped), so `acpi_osi="Windows 2015"` reaches
// the kernel as one parameter; Heads splits it in two. For plain words this
// is the same single-space join Heads produces.
//
// What is kept from Heads, so its lines and ours agree: every menuentry is
// an entry, submenus flattened, titled by its own title (GRUB's first
// non-option argument; Heads takes the first quoted string, the same thing
// in generated configs); linux/linux16/linuxefi with initrd/initrd16/
// initrdefi (several files: several initrd fields), or multiboot/multiboot2
// with module/module2 (--nounzip dropped) as a "xen" entry; commands inside
// if/else count, the last one wins; a device prefix like (hd0,gpt2) or
// ($root) is dropped and a relative path is taken relative to the config's
// directory; the Debian installer's "---" is removed from a Linux command
// line; chainloader, fwsetup and entries without a kernel are not offered.
// Heads' line-by-line reading also needs `}` alone on a line; one-line
// entries (`menuentry x { linux /k; }`) work here.

// Expansion limits: `set x=$x$x` repeated doubles a value per line, so
// values and the total text expanded from variables are bounded.
const (
	maxVarValue     = 64 << 10
	maxExpandBudget = 1 << 20
)

// ---- evaluation ----

type gvar struct {
	val   string
	known bool
}

// genv is a scope of variables on top of its parent's. Entries and
// submenus get a child scope instead of a copy, so a config with many
// variables and many entries stays linear. A parent is complete before any
// child is made (see runMenu).
type genv struct {
	vars   map[string]gvar
	parent *genv
}

func newEnv(parent *genv) *genv { return &genv{vars: map[string]gvar{}, parent: parent} }

func (e *genv) get(name string) (gvar, bool) {
	for s := e; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	return gvar{}, false
}

func (e *genv) set(name string, v gvar) { e.vars[name] = v }

// A field is one argument after expansion. Unknown variables are kept as
// \x00name\x00 markers until the caller decides (path: unusable; argument:
// dropped with a warning). Input containing NUL is refused before parsing,
// so the marker cannot be forged.
type field struct {
	text   string
	quoted bool // had a quoted part: kept even when empty
}

const mark = "\x00"

// unmark removes unknown-variable markers and returns the names found.
func unmark(s string) (string, []string) {
	if !strings.Contains(s, mark) {
		return s, nil
	}
	var b strings.Builder
	var names []string
	for {
		i := strings.Index(s, mark)
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		rest := s[i+1:]
		j := strings.Index(rest, mark)
		if j < 0 { // cannot happen: markers come in pairs
			break
		}
		names = append(names, rest[:j])
		s = rest[j+1:]
	}
	return b.String(), names
}

type grubReader struct {
	name    string // config path relative to the partition root
	dir     string // its directory, "" for the root: prefix for relative paths
	grubenv map[string]string
	res     *Result
	warned  map[string]bool
	// lastSet records the last value given to every variable anywhere in the
	// file, conditional or not: Heads greps `set default_kernelopts` this way
	// for BootLoaderSpec entries.
	lastSet map[string]string
	budget  int // bytes variables may still expand to
}

// ParseGrub reads a GRUB 2 configuration. name is its path relative to the
// root of the partition it lives on (for example "/grub/grub.cfg"); relative
// kernel paths are taken relative to its directory, as Heads does. grubenv
// holds the variables `load_env` would load (nil for none). Paths are not
// checked against any file system; Scan does that.
func ParseGrub(name string, data []byte, grubenv map[string]string) *Result {
	res, _ := parseGrub(name, data, grubenv)
	return res
}

func parseGrub(name string, data []byte, grubenv map[string]string) (*Result, map[string]string) {
	res := &Result{}
	if strings.IndexByte(string(data), 0) >= 0 {
		res.warn(name, 0, "contains NUL bytes: not a text configuration; ignored")
		return res, nil
	}
	g := &grubReader{
		name:    name,
		dir:     configDir(name),
		grubenv: grubenv,
		res:     res,
		warned:  map[string]bool{},
		lastSet: map[string]string{},
		budget:  maxExpandBudget,
	}
	nodes := parseGrubScript(name, string(data), res)
	g.runMenu(nodes, newEnv(nil), nil)
	// Syntax warnings come from the first pass; report all in file order.
	slices.SortStableFunc(res.Warnings, func(a, b Warning) int { return a.Line - b.Line })
	return res, g.lastSet
}

// configDir is Heads' "appenddir": the config's directory relative to the
// partition root, "" when that is the root itself.
func configDir(name string) string {
	d := path.Dir(name)
	if d == "/" || d == "." {
		return ""
	}
	if !strings.HasPrefix(d, "/") {
		d = "/" + d
	}
	return d
}

type menuRef struct {
	n     *node
	title string
}

// runMenu executes a menu's script (the whole file, or a submenu's body):
// variable assignments in order, menus collected; then each entry is read
// with the variables as they stand at the end, which is what GRUB sees when
// the user picks it.
func (g *grubReader) runMenu(nodes []node, env *genv, submenu []string) {
	var menus []menuRef
	g.exec(nodes, env, 0, &menus)
	for _, m := range menus {
		if !m.n.closed {
			if m.n.keyword == "menuentry" {
				g.res.skip(m.title, g.name, m.n.line, "menuentry has no closing '}'; GRUB rejects it")
			}
			g.skipInside(m.n.body, m.n)
			continue
		}
		if m.n.keyword == "submenu" {
			g.runMenu(m.n.body, newEnv(env), append(slices.Clone(submenu), m.title))
			continue
		}
		g.entry(m, newEnv(env), submenu)
	}
}

func (g *grubReader) exec(nodes []node, env *genv, cond int, menus *[]menuRef) {
	for i := range nodes {
		n := &nodes[i]
		switch n.kind {
		case nCmd:
			g.command(n, env, cond)
		case nBlock:
			if n.keyword == "function" { // not run unless called; we run no calls
				continue
			}
			if !n.closed {
				g.skipInside(n.body, n)
				continue
			}
			g.exec(n.body, env, cond+1, menus)
		case nMenu:
			*menus = append(*menus, menuRef{n: n, title: g.title(n, env)})
		}
	}
}

// skipInside reports the entries inside a block GRUB would reject.
func (g *grubReader) skipInside(nodes []node, outer *node) {
	for i := range nodes {
		n := &nodes[i]
		if n.kind == nMenu && n.keyword == "menuentry" {
			g.res.skip(g.title(n, newEnv(nil)), g.name, n.line, "inside the %s of line %d, which is never closed; GRUB rejects it", outer.keyword, outer.line)
		}
		g.skipInside(n.body, outer)
	}
}

// title returns the first argument of a menuentry that is not an option.
func (g *grubReader) title(n *node, env *genv) string {
	// Options like `$menuentry_id_option 'gnulinux-...'` are expanded
	// silently; only the title's own unknown variables are worth a warning.
	var args []string
	var unknowns [][]string
	for _, f := range g.expand(n.words, env) {
		s, unknown := unmark(f.text)
		if s == "" && !f.quoted {
			continue
		}
		args = append(args, s)
		unknowns = append(unknowns, unknown)
	}
	pick := func(i int) string {
		g.warnUnknown(unknowns[i], n.line)
		return g.cleanTitle(args[i], n.line)
	}
	withArg := map[string]bool{"--class": true, "--users": true, "--hotkey": true, "--id": true, "--source": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return pick(i + 1)
			}
			break
		}
		if strings.HasPrefix(a, "--") {
			if withArg[a] {
				i++
			}
			continue
		}
		return pick(i)
	}
	return ""
}

func (g *grubReader) cleanTitle(s string, line int) string {
	g.noteShell(s, line)
	return CleanName(s)
}

// noteShell warns about shell syntax that Heads would have executed.
func (g *grubReader) noteShell(s string, line int) {
	if strings.Contains(s, "$(") || strings.Contains(s, "`") {
		key := "shell:" + strconv.Itoa(line)
		if !g.warned[key] {
			g.warned[key] = true
			g.res.warn(g.name, line, "%q contains shell command syntax; kept as literal text, never run", s)
		}
	}
}

// fields expands words into arguments, dropping unknown variables (with a
// warning) and empty unquoted results.
func (g *grubReader) fields(ws []word, env *genv, line int) []string {
	var out []string
	for _, f := range g.expand(ws, env) {
		s, unknown := unmark(f.text)
		g.warnUnknown(unknown, line)
		if s == "" && !f.quoted {
			continue
		}
		out = append(out, s)
	}
	return out
}

func (g *grubReader) warnUnknown(names []string, line int) {
	for _, n := range names {
		if g.warned["var:"+n] {
			continue
		}
		g.warned["var:"+n] = true
		g.res.warn(g.name, line, "$%s is not set unconditionally in this file; expanded to nothing (as Heads does)", n)
	}
}

// expand performs GRUB's word expansion with markers for unknown variables.
func (g *grubReader) expand(ws []word, env *genv) []field {
	var out []field
	for _, w := range ws {
		var cur strings.Builder
		started, quoted := false, false
		flush := func() {
			if started {
				out = append(out, field{cur.String(), quoted})
			}
			cur.Reset()
			started, quoted = false, false
		}
		for _, p := range w.parts {
			switch p.kind {
			case partLit:
				cur.WriteString(p.text)
				started = true
			case partQuoted:
				cur.WriteString(p.text)
				started, quoted = true, true
			case partQVar:
				cur.WriteString(g.lookup(env, p.text))
				started, quoted = true, true
			case partVar:
				v, ok := env.get(p.text)
				if !ok || !v.known || !g.spend(len(v.val)) {
					cur.WriteString(mark + p.text + mark)
					started = true
					continue
				}
				// Unquoted: split on white space, like GRUB's argv_split_append.
				val := v.val
				if val != "" && isSpace(val[0]) {
					flush()
				}
				for i, piece := range strings.Fields(val) {
					if i > 0 {
						flush()
					}
					cur.WriteString(piece)
					started = true
				}
				if val != "" && isSpace(val[len(val)-1]) {
					flush()
				}
			}
		}
		flush()
	}
	return out
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (g *grubReader) lookup(env *genv, name string) string {
	if v, ok := env.get(name); ok && v.known && g.spend(len(v.val)) {
		return v.val
	}
	return mark + name + mark
}

// spend takes n bytes from the expansion budget; once it is exhausted,
// variables count as unknown.
func (g *grubReader) spend(n int) bool {
	if g.budget < n {
		if g.budget >= 0 {
			g.res.warn(g.name, 0, "variables expand to more than %d bytes; further ones are treated as unset", maxExpandBudget)
			g.budget = -1
		}
		return false
	}
	g.budget -= n
	return true
}

// joined expands words into one string (for set values), with markers.
func (g *grubReader) joined(ws []word, env *genv) string {
	var parts []string
	for _, f := range g.expand(ws, env) {
		parts = append(parts, f.text)
	}
	return strings.Join(parts, " ")
}

// command handles the commands that change variables.
func (g *grubReader) command(n *node, env *genv, cond int) {
	first, _ := n.words[0].literal()
	switch first {
	case "set":
		if len(n.words) < 2 {
			return
		}
		raw := g.joined(n.words[1:], env)
		name, val, ok := strings.Cut(raw, "=")
		if ok {
			g.assign(env, name, val, cond, n.line)
		}
		return
	case "unset":
		for _, a := range g.fields(n.words[1:], env, n.line) {
			// Unset, a variable expands to nothing: known, if unconditional.
			env.set(a, gvar{known: cond == 0})
		}
		return
	case "load_env":
		g.loadEnv(n, env)
		return
	}
	// name=value as a command of its own.
	w := n.words[0]
	if len(n.words) == 1 && len(w.parts) > 0 && w.parts[0].kind == partLit {
		name, rest, ok := strings.Cut(w.parts[0].text, "=")
		if ok && validVarName(name) {
			tail := word{line: w.line, parts: append([]part{{partLit, rest}}, w.parts[1:]...)}
			g.assign(env, name, g.joined([]word{tail}, env), cond, n.line)
		}
	}
}

func (g *grubReader) assign(env *genv, name, val string, cond, line int) {
	if !validVarName(name) {
		return
	}
	clean, unknown := unmark(val)
	if len(clean) > maxVarValue {
		g.res.warn(g.name, line, "value of $%s is longer than %d bytes; treated as unset", name, maxVarValue)
		env.set(name, gvar{})
		return
	}
	g.lastSet[name] = clean
	// A value set under a condition we do not evaluate, or built from
	// variables we do not know, is not known.
	env.set(name, gvar{val: clean, known: cond == 0 && len(unknown) == 0})
}

func (g *grubReader) loadEnv(n *node, env *genv) {
	var names []string
	args := g.fieldsOf(loadCmd{args: g.expand(n.words[1:], env)})
	for i := 0; i < len(args); i++ {
		a := args[i]
		file := ""
		switch {
		case (a == "-f" || a == "--file") && i+1 < len(args):
			i++
			file = args[i]
		case strings.HasPrefix(a, "--file="):
			file = strings.TrimPrefix(a, "--file=")
		}
		switch {
		case file != "":
			// Fedora: load_env -f ${config_directory}/grubenv, the file
			// beside the config, which is the grubenv we were given.
			if path.Base(file) != "grubenv" {
				g.res.warn(g.name, n.line, "load_env -f %s is not followed", file)
				return
			}
		case strings.HasPrefix(a, "-"):
		default:
			names = append(names, a)
		}
	}
	// The usual `if [ -s $prefix/grubenv ]; then load_env; fi` only tests
	// that grubenv exists, which is what we know: the values count as known.
	for k, v := range g.grubenv {
		if !validVarName(k) || (len(names) > 0 && !slices.Contains(names, k)) {
			continue
		}
		env.set(k, gvar{val: v, known: true})
	}
}

// ---- entries ----

type loadCmd struct {
	args []field
	line int
}

type grubEntry struct {
	linux     *loadCmd
	initrd    *loadCmd
	multiboot *loadCmd
	modules   []loadCmd
	uuid      string
	other     string // chainloader, fwsetup, ... : not startable by kexec
}

func (g *grubReader) entry(m menuRef, env *genv, submenu []string) {
	var e grubEntry
	g.entryExec(m.n.body, env, 0, &e)
	name := m.title
	skip := func(format string, args ...any) {
		g.res.skip(name, g.name, m.n.line, format, args...)
	}
	out := Entry{
		Name:     name,
		Submenu:  strings.Join(submenu, ">"),
		RootUUID: e.uuid,
		Source:   g.name,
		Line:     m.n.line,
	}
	switch {
	case e.multiboot != nil:
		out.Kind = KindXen // as Heads: every multiboot kernel is taken for Xen
		p, args, reason := g.pathArgs(e.multiboot, false)
		if reason != "" {
			skip("multiboot kernel: %s", reason)
			return
		}
		out.Kernel, out.KernelArgs = p, args
		for i := range e.modules {
			p, args, reason := g.pathArgs(&e.modules[i], false)
			if reason != "" {
				skip("module: %s", reason)
				return
			}
			out.Modules = append(out.Modules, Module{Path: p, Args: args})
		}
	case e.linux != nil:
		out.Kind = KindELF
		p, args, reason := g.pathArgs(e.linux, true)
		if reason != "" {
			skip("kernel: %s", reason)
			return
		}
		out.Kernel, out.Append = p, args
		if e.initrd != nil {
			for _, f := range e.initrd.args {
				p, reason := g.path(f, e.initrd.line)
				if reason != "" {
					skip("initrd: %s", reason)
					return
				}
				if p == "" {
					continue
				}
				out.Initrds = append(out.Initrds, p)
			}
		}
	case e.other != "":
		skip("uses %s, which kexec cannot start (no linux or multiboot command)", e.other)
		return
	default:
		skip("no linux or multiboot command")
		return
	}
	if err := out.Validate(); err != nil {
		skip("%v", err)
		return
	}
	g.res.Entries = append(g.res.Entries, out)
}

func (g *grubReader) entryExec(nodes []node, env *genv, cond int, e *grubEntry) {
	for i := range nodes {
		n := &nodes[i]
		switch n.kind {
		case nBlock:
			if n.keyword == "function" || !n.closed {
				continue
			}
			// Commands under a condition are taken as Heads takes them (the
			// last linux/initrd wins); variables set there become unknown.
			g.entryExec(n.body, env, cond+1, e)
			continue
		case nMenu:
			g.res.warn(g.name, n.line, "%s inside a menuentry ignored", n.keyword)
			continue
		}
		first, _ := n.words[0].literal()
		cmd := loadCmd{args: g.expand(n.words[1:], env), line: n.line}
		switch first {
		case "linux", "linux16", "linuxefi":
			e.linux = &cmd
		case "initrd", "initrd16", "initrdefi":
			e.initrd = &cmd
		case "multiboot", "multiboot2":
			e.multiboot = &cmd
		case "module", "module2":
			e.modules = append(e.modules, cmd)
		case "search", "search.fs_uuid":
			if u := searchUUID(first, g.fieldsOf(cmd)); u != "" {
				e.uuid = u
			}
		case "chainloader", "fwsetup", "appleloader", "kfreebsd", "knetbsd", "kopenbsd", "ntldr", "linuxkernel":
			e.other = first
		default:
			g.command(n, env, cond)
		}
	}
}

func (g *grubReader) fieldsOf(c loadCmd) []string {
	var out []string
	for _, f := range c.args {
		s, _ := unmark(f.text)
		out = append(out, s)
	}
	return out
}

// searchUUID returns the UUID a `search` command assigns to $root, if any.
func searchUUID(cmd string, args []string) string {
	byUUID := cmd == "search.fs_uuid"
	setVar := ""
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--fs-uuid" || a == "-u":
			byUUID = true
		case a == "--set" || a == "-s":
			setVar = "root"
		case strings.HasPrefix(a, "--set="):
			setVar = strings.TrimPrefix(a, "--set=")
		case strings.HasPrefix(a, "-"):
		default:
			pos = append(pos, a)
		}
	}
	if cmd == "search.fs_uuid" {
		setVar = "root"
		if len(pos) > 1 {
			setVar = pos[1]
		}
	}
	if !byUUID || setVar != "root" || len(pos) == 0 {
		return ""
	}
	return pos[0]
}

// pathArgs splits a loader command into its file (first argument after
// options) and its command line.
func (g *grubReader) pathArgs(c *loadCmd, isLinux bool) (string, string, string) {
	args := c.args
	// multiboot/module options (--nounzip, --quirk-...) precede the file.
	for !isLinux && len(args) > 0 {
		s, _ := unmark(args[0].text)
		if !strings.HasPrefix(s, "--") {
			break
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return "", "", "no file given"
	}
	p, reason := g.path(args[0], c.line)
	if reason != "" {
		return "", "", reason
	}
	if p == "" {
		return "", "", "no file given"
	}
	return p, g.cmdline(args[1:], c.line, isLinux), ""
}

// path turns a file argument into a path relative to the partition root:
// a GRUB device prefix such as (hd0,gpt2) or ($root) is dropped (the files
// are read from the partition being parsed, as in Heads), and a relative
// path is taken relative to the config's directory (Heads' fix_path).
func (g *grubReader) path(f field, line int) (string, string) {
	t := f.text
	if strings.HasPrefix(t, "(") {
		if i := strings.IndexByte(t, ')'); i >= 0 {
			t = t[i+1:]
		}
	}
	clean, unknown := unmark(t)
	if len(unknown) > 0 {
		return "", "path " + quote(f.text) + " needs $" + unknown[0] + ", which is not set unconditionally in this file"
	}
	g.noteShell(clean, line)
	if clean == "" {
		return "", ""
	}
	if !strings.HasPrefix(clean, "/") {
		clean = g.dir + "/" + clean
	}
	return clean, ""
}

func quote(s string) string {
	s, _ = unmark(s)
	return "\"" + s + "\""
}

// cmdline builds a kernel command line from arguments the way GRUB's
// grub_create_loader_cmdline does. For Linux, the Debian installer's "---"
// marker is dropped, as Heads and its kexec-boot drop it.
//
// Empty arguments are dropped: GRUB would pass an empty word, Heads' shell
// drops it, and the kernel ignores it. Heads' line keeps one trace of them,
// though: its field is the config text with variables expanded to nothing,
// so "... gnttab_max_frames=2048 ${xen_rm_opts}" (Qubes' multiboot2 line)
// becomes "... gnttab_max_frames=2048 |module ...", with a space before the
// '|'. For multiboot and module lines (Linux's append is always the last
// field, where Heads trims it) the command line keeps that one trailing
// space, so a default saved by Heads is still honoured.
func (g *grubReader) cmdline(args []field, line int, isLinux bool) string {
	var out []string
	pad := false
	for _, f := range args {
		s, unknown := unmark(f.text)
		g.warnUnknown(unknown, line)
		pad = s == ""
		if s == "" {
			continue
		}
		if isLinux && s == "---" {
			continue
		}
		g.noteShell(s, line)
		out = append(out, grubQuoteArg(s))
	}
	cmd := strings.Join(out, " ")
	if pad && !isLinux && cmd != "" {
		cmd += " "
	}
	return cmd
}

func grubQuoteArg(s string) string {
	if !strings.ContainsAny(s, " \\'\"") {
		return s
	}
	var b strings.Builder
	space := strings.Contains(s, " ")
	if space {
		b.WriteByte('"')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' || c == '\'' || c == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	if space {
		b.WriteByte('"')
	}
	return b.String()
}

// ParseGrubenv reads a GRUB environment block (grubenv): `name=value` lines,
// '#' padding and comments, backslash escapes as grub-editenv writes them.
func ParseGrubenv(data []byte) map[string]string {
	vars := map[string]string{}
	s := string(data)
	for len(s) > 0 {
		// One logical line: a backslash escapes the next byte, newline included.
		var b strings.Builder
		i := 0
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				b.WriteByte(s[i])
				continue
			}
			if c == '\n' {
				break
			}
			b.WriteByte(c)
		}
		if i < len(s) {
			i++
		}
		s = s[i:]
		line := b.String()
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && validVarName(k) {
			vars[k] = v
		}
	}
	return vars
}
