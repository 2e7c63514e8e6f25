package bootentry

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
)

// Options tune Scan. The zero value scans a /boot partition as Heads'
// gui-init does (kexec-select-boot.sh -c grub.cfg).
type Options struct {
	// Pattern selects configuration files by base name (path.Match syntax),
	// like kexec-select-boot.sh -c: "grub.cfg" (the default) for /boot,
	// "*.cfg" for USB media, where it also finds isolinux.cfg and friends.
	Pattern string
	// FSUUID, when set, is the UUID of the mounted file system. A GRUB entry
	// that selects another file system (`search --fs-uuid --set=root X`, as
	// os-prober entries for other disks do) is skipped: its files are not
	// here, and a same-named file here is not the one it means. Heads does
	// not check this.
	FSUUID string
	// Sorted lists directories in name order. By default they are listed in
	// on-disk order, as Heads' `find` lists them: a saved default is stored
	// by its position in the menu, so the order must agree with Heads' on
	// the same disk. Tests and tools that want a stable order set Sorted.
	Sorted bool
}

const (
	maxConfigSize = 4 << 20 // a grub.cfg is tens of KiB
	maxScanBytes  = 32 << 20
	maxScanDepth  = 32
	maxScanNodes  = 100000
)

// Scan finds the boot configurations on the partition mounted at mountDir
// and parses them, in Heads' order: every file matching Options.Pattern in a
// depth-first walk (paths containing "efi" or "EFI" are skipped, as Heads
// skips them), each parsed as GRUB or SYSLINUX according to its content,
// with the grubenv beside it; then, only if that produced no entry,
// BootLoaderSpec entries from loader/entries (separate /boot) or
// boot/loader/entries (single partition).
//
// Every file an entry loads (kernel, initrds, and for Xen the modules too,
// which Heads does not check) must be a regular file inside the partition;
// symbolic links are followed only while they stay inside it. An entry
// whose file is missing is skipped with the reason and the others are kept;
// Heads drops a missing kernel silently and stops its whole parse at a
// missing initrd. Unlike Heads, BootLoaderSpec entries are also read when
// no grub.cfg exists, and their files are checked as well.
//
// Paths in the entries are relative to the partition root, which is what
// Heads writes and what kexec is given (mountDir + path). GRUB and SYSLINUX
// paths are already relative to the partition they live on. BootLoaderSpec
// paths are written as the OS sees them: Heads strips "/boot" from their
// front, which is right for a separate /boot partition and wrong for a
// single-partition system, where the kernel is at <mount>/boot/vmlinuz.
// Scan tries the layout's natural reading first and the other second and
// writes the one that exists: on a separate /boot "/boot/vmlinuz-x" becomes
// "/vmlinuz-x" as in Heads; on a single partition it stays "/boot/vmlinuz-x".
//
// The returned error is only for a mountDir that cannot be read at all or a
// bad Pattern; problems with single files are in Result.Warnings.
func Scan(mountDir string, opts *Options) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	pattern := opts.Pattern
	if pattern == "" {
		pattern = "grub.cfg"
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("scan %s: pattern %q: %w", mountDir, pattern, err)
	}
	root, err := os.OpenRoot(mountDir)
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", mountDir, err)
	}
	defer root.Close()
	s := &scanner{root: root, opts: opts, pattern: pattern, res: &Result{}}
	if _, err := s.list("."); err != nil {
		return nil, fmt.Errorf("scan %s: %w", mountDir, err)
	}
	s.walk(".", 0)
	if len(s.res.Entries) == 0 {
		s.bls()
	}
	return s.res, nil
}

type grubSeen struct {
	name    string
	grubenv map[string]string
	sets    map[string]string
}

type scanner struct {
	root    *os.Root
	opts    *Options
	pattern string
	res     *Result
	nodes   int
	read    int // config bytes read so far, bounded by maxScanBytes
	grubs   []grubSeen
}

func (s *scanner) list(dir string) ([]fs.DirEntry, error) {
	f, err := s.root.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1) // on-disk order, like find
	if err != nil {
		return nil, err
	}
	if s.opts.Sorted {
		slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return des, nil
}

func (s *scanner) walk(dir string, depth int) {
	des, err := s.list(dir)
	if err != nil {
		s.res.warn("/"+dir, 0, "cannot list directory: %v", err)
		return
	}
	for _, de := range des {
		s.nodes++
		if s.nodes > maxScanNodes {
			if s.nodes == maxScanNodes+1 {
				s.res.warn("/", 0, "more than %d files; the rest is not scanned", maxScanNodes)
			}
			return
		}
		name := de.Name()
		rel := path.Join(dir, name)
		// Heads: case "$i" in *EFI* | *efi* ) continue. The EFI system
		// partition holds stub configs that chain to the real one.
		if strings.Contains(name, "efi") || strings.Contains(name, "EFI") {
			continue
		}
		if ok, _ := path.Match(s.pattern, name); ok {
			s.config(rel)
		}
		if de.IsDir() { // not a symlink: find does not follow them either
			if depth+1 >= maxScanDepth {
				s.res.warn("/"+rel, 0, "deeper than %d directories; not scanned", maxScanDepth)
				continue
			}
			s.walk(rel, depth+1)
		}
	}
}

// readFile reads a file below the root, following symbolic links only
// inside it, refusing non-regular and oversized files.
func (s *scanner) readFile(rel string) ([]byte, error) {
	f, err := s.root.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if s.read+int(min(fi.Size(), maxConfigSize)) > maxScanBytes {
		return nil, fmt.Errorf("configuration files add up to more than %d bytes", maxScanBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	s.read += len(data)
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("larger than %d bytes", maxConfigSize)
	}
	return data, nil
}

func (s *scanner) config(rel string) {
	name := "/" + rel
	data, err := s.readFile(rel)
	if err != nil {
		s.res.warn(name, 0, "not read: %v", err)
		return
	}
	var r *Result
	if isGrub(rel, data) {
		var env map[string]string
		envRel := path.Join(path.Dir(rel), "grubenv")
		if b, err := s.readFile(envRel); err == nil {
			env = ParseGrubenv(b)
		}
		var sets map[string]string
		r, sets = parseGrub(name, data, env)
		s.grubs = append(s.grubs, grubSeen{name: name, grubenv: env, sets: sets})
	} else {
		r = ParseSyslinux(name, data)
	}
	s.check(r)
}

// isGrub tells GRUB script from SYSLINUX by the first keyword that only one
// of them has; Heads' single parser accepts both in any file.
func isGrub(rel string, data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToLower(f[0]) {
		case "menuentry", "submenu":
			return true
		case "label":
			return false
		}
	}
	base := path.Base(rel)
	return strings.Contains(base, "grub") || strings.Contains(base, "loopback")
}

// check moves entries whose files are not on the partition to Skipped.
func (s *scanner) check(r *Result) {
	var keep []Entry
	for _, e := range r.Entries {
		if reason := s.problem(e); reason != "" {
			r.skip(e.Name, e.Source, e.Line, "%s", reason)
			continue
		}
		keep = append(keep, e)
	}
	r.Entries = keep
	// Keep the skipped entries in file order, whichever check caught them.
	slices.SortStableFunc(r.Skipped, func(a, b Skipped) int { return a.Line - b.Line })
	s.res.merge(r)
}

func (s *scanner) problem(e Entry) string {
	if s.opts.FSUUID != "" && e.RootUUID != "" && !strings.EqualFold(e.RootUUID, s.opts.FSUUID) {
		return fmt.Sprintf("selects the file system with UUID %s (search --fs-uuid); this partition is %s", e.RootUUID, s.opts.FSUUID)
	}
	if r := s.fileProblem("kernel", e.Kernel); r != "" {
		return r
	}
	for _, p := range e.Initrds {
		if r := s.fileProblem("initrd", p); r != "" {
			return r
		}
	}
	for _, m := range e.Modules {
		if r := s.fileProblem("module", m.Path); r != "" {
			return r
		}
	}
	return ""
}

func (s *scanner) fileProblem(what, p string) string {
	rel := strings.TrimLeft(p, "/")
	if rel == "" {
		rel = "."
	}
	fi, err := s.root.Stat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s %s not found on the partition", what, p)
	case err != nil && strings.Contains(err.Error(), "escapes"):
		return fmt.Sprintf("%s %s leads outside the partition", what, p)
	case err != nil:
		return fmt.Sprintf("%s %s: %v", what, p, err)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("%s %s is not a regular file", what, p)
	}
	return ""
}

func (s *scanner) isDir(rel string) bool {
	fi, err := s.root.Lstat(rel)
	return err == nil && fi.IsDir()
}

// bls parses BootLoaderSpec entries, used (as in Heads) only when the GRUB
// and SYSLINUX configs gave nothing, as on Fedora, whose grub.cfg only says
// `blscfg`.
func (s *scanner) bls() {
	dir, single := "loader/entries", false
	if !s.isDir(dir) {
		dir, single = "boot/loader/entries", true
		if !s.isDir(dir) {
			return
		}
	}
	vars := s.blsVars(single)
	des, err := s.list(dir)
	if err != nil {
		s.res.warn("/"+dir, 0, "cannot list directory: %v", err)
		return
	}
	for _, de := range des {
		// find -type f -name '*.conf': regular files only, no symlinks.
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), ".conf") {
			continue
		}
		rel := path.Join(dir, de.Name())
		data, err := s.readFile(rel)
		if err != nil {
			s.res.warn("/"+rel, 0, "not read: %v", err)
			continue
		}
		r := ParseBLS("/"+rel, data, vars)
		var keep []Entry
	entries:
		for _, e := range r.Entries {
			var reason string
			if e.Kernel, reason = s.blsPath("kernel", e.Kernel, single); reason != "" {
				r.skip(e.Name, e.Source, e.Line, "%s", reason)
				continue
			}
			for i, p := range e.Initrds {
				if e.Initrds[i], reason = s.blsPath("initrd", p, single); reason != "" {
					r.skip(e.Name, e.Source, e.Line, "%s", reason)
					continue entries
				}
			}
			keep = append(keep, e)
		}
		r.Entries = keep
		s.res.merge(r)
	}
}

// blsPath resolves a BootLoaderSpec path against the partition (see Scan).
func (s *scanner) blsPath(what, p string, single bool) (string, string) {
	cands := []string{p}
	if rest, ok := strings.CutPrefix(p, "/boot/"); ok {
		if !single {
			cands = []string{"/" + rest, p}
		}
	} else if single {
		cands = append(cands, "/boot"+p)
	}
	first := ""
	for _, c := range cands {
		r := s.fileProblem(what, c)
		if r == "" {
			return c, ""
		}
		if first == "" {
			first = r
		}
	}
	if len(cands) > 1 {
		first += " (nor at " + strings.Join(cands[1:], ", ") + ")"
	}
	return "", first
}

// blsVars gathers the variables BootLoaderSpec values may use: grubenv and
// $kernelopts, which comes (as in Heads) from grubenv, else from grub.cfg's
// `set default_kernelopts=`, else (beyond Heads, which expands it to
// nothing) from grub.cfg's fallback `set kernelopts=`.
func (s *scanner) blsVars(single bool) map[string]string {
	vars := map[string]string{}
	var sets map[string]string
	if len(s.grubs) > 0 {
		g := s.grubs[0]
		for k, v := range g.grubenv {
			vars[k] = v
		}
		sets = g.sets
	} else {
		prefix := ""
		if single {
			prefix = "boot/"
		}
		for _, p := range []string{"grub2/grubenv", "grub/grubenv"} {
			if b, err := s.readFile(prefix + p); err == nil {
				for k, v := range ParseGrubenv(b) {
					vars[k] = v
				}
				break
			}
		}
	}
	if _, ok := vars["kernelopts"]; !ok {
		if v, ok := sets["default_kernelopts"]; ok {
			vars["kernelopts"] = v
		} else if v, ok := sets["kernelopts"]; ok {
			vars["kernelopts"] = v
		}
	}
	return vars
}
