package bootentry

import (
	"path"
	"strings"
)

// ParseBLS reads one BootLoaderSpec entry (loader/entries/*.conf) as Heads'
// kexec-parse-bls.sh does: `title` is the name, `linux` the kernel, `initrd`
// the initrd, `options` the command line, and an entry without `options` gets
// $kernelopts. vars are the variables values may use: `$kernelopts` and the
// rest of grubenv (GRUB's blscfg expands them from its environment).
// name is the file's path relative to the partition root. Paths are returned
// as written (made absolute); Scan resolves them against the partition.
//
// Differences from Heads, on purpose: every `initrd` key is kept (Heads keeps
// the last, which drops a microcode initrd listed first), several `options`
// keys are joined as the specification says, paths are relative to the
// partition root (Heads prefixes relative ones with grub.cfg's directory),
// an entry without a title is named after its file (Heads leaves it empty),
// '@' in kernelopts is kept (Heads turns it into '_'), unknown variables
// expand to nothing with a warning (Heads' eval does the same silently), and
// `efi` entries (EFI programs, unified kernel images) are skipped with a
// reason.
func ParseBLS(name string, data []byte, vars map[string]string) *Result {
	res := &Result{}
	if strings.IndexByte(string(data), 0) >= 0 {
		res.warn(name, 0, "contains NUL bytes: not a text configuration; ignored")
		return res
	}
	var (
		title, kernel string
		initrds, opts []string
		hasOptions    bool
		efi           string
		first         = 0
	)
	warned := map[string]bool{}
	budget := maxExpandBudget
	expand := func(s string, line int) []string {
		out, unknown := expandBLS(s, vars, &budget)
		for _, u := range unknown {
			if !warned[u] {
				warned[u] = true
				res.warn(name, line, "$%s is not set in grubenv or grub.cfg; expanded to nothing (as Heads does)", u)
			}
		}
		return strings.Fields(out)
	}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if first == 0 {
			first = n
		}
		val := strings.Join(f[1:], " ")
		switch f[0] {
		case "title":
			title = val
		case "linux":
			w := expand(val, n)
			if len(w) > 0 {
				kernel = w[0]
			}
			if len(w) > 1 {
				res.warn(name, n, "linux takes one path; %q ignored", strings.Join(w[1:], " "))
			}
		case "initrd":
			initrds = append(initrds, expand(val, n)...)
		case "options":
			hasOptions = true
			opts = append(opts, expand(val, n)...)
		case "efi":
			efi = val
		case "devicetree":
			res.warn(name, n, "devicetree is not passed to kexec; ignored")
		}
	}
	if first == 0 {
		first = 1
	}
	if title == "" {
		title = strings.TrimSuffix(path.Base(name), ".conf")
	}
	title = CleanName(title)
	skip := func(format string, args ...any) {
		res.skip(title, name, first, format, args...)
	}
	if kernel == "" {
		if efi != "" {
			skip("is an EFI program (%s), which kexec cannot start", efi)
		} else {
			skip("no linux key")
		}
		return res
	}
	if !hasOptions {
		opts = strings.Fields(vars["kernelopts"])
	}
	e := Entry{
		Name:   title,
		Kind:   KindELF,
		Kernel: rootPath(kernel),
		Append: strings.Join(opts, " "),
		Source: name,
		Line:   first,
	}
	for _, p := range initrds {
		e.Initrds = append(e.Initrds, rootPath(p))
	}
	if err := e.Validate(); err != nil {
		skip("%v", err)
		return res
	}
	res.Entries = append(res.Entries, e)
	return res
}

// rootPath makes a BootLoaderSpec path absolute: the specification says all
// paths are relative to the root of the partition holding the entries.
func rootPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/" + p
}

// expandBLS replaces $name and ${name} from vars; unknown names expand to
// nothing and are returned. Nothing else is interpreted. budget bounds the
// bytes expanded (a file repeating $kernelopts could otherwise grow without
// limit); past it, names count as unknown.
func expandBLS(s string, vars map[string]string, budget *int) (string, []string) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	var unknown []string
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		name, n := varRef(s[i:])
		if n == 0 || !validVarName(name) {
			b.WriteByte('$')
			i++
			continue
		}
		if v, ok := vars[name]; ok && len(v) <= *budget {
			*budget -= len(v)
			b.WriteString(v)
		} else {
			unknown = append(unknown, name)
		}
		i += n
	}
	return b.String(), unknown
}
