package diskkey

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/goheads/goheads/pkg/initrd"
)

// SecretKeyPath is where the OS initrd finds the disk unlock key.
const SecretKeyPath = "/secret.key"

// Overrides is kexec_initrd_crypttab_overrides.txt for an OS initrd.
type Overrides struct {
	// File is the file's content; nil when the initrd has no crypttab (at
	// boot, a generic crypttab is then written, as Heads does).
	File []byte
	// Changed are the entries now opened with /secret.key.
	Changed []string
}

// CrypttabOverrides reads the crypttab files of the OS initrd that will be
// the default boot, as Heads' kexec-save-default does, and returns them
// with the key file of the disk key's volumes set to /secret.key; at boot
// they replace the initrd's own files, so the OS opens its volumes with
// the key under its own names.
//
// Heads replaces every "none" in the file with /secret.key (sed), which
// also hits names and options containing "none" and volumes the key was
// not added to. goheads changes only the key file field, and only of
// entries whose device is one of devs (by UUID or path) with no key file
// (empty, "none" or "-"). When no entry names one of devs (a device given
// as LABEL= or by-path), it falls back to Heads' choice: every entry
// without a key file.
func CrypttabOverrides(osInitrd []byte, devs []Device) (*Overrides, error) {
	files, err := initrd.Find(osInitrd, initrd.Options{Want: func(n string) bool { return strings.Contains(n, "crypttab") }})
	if err != nil {
		return nil, fmt.Errorf("look for crypttab in the OS initrd: %w", err)
	}
	if len(files) == 0 {
		return &Overrides{}, nil
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	type entry struct {
		file   string
		fields []string
		line   string
	}
	var entries []entry
	matched := false
	for _, f := range files {
		for _, line := range strings.Split(string(f.Data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			e := entry{file: f.Name, fields: strings.Fields(line), line: line}
			if len(e.fields) >= 2 && noKeyFile(e.fields) && devMatches(e.fields[1], devs) {
				matched = true
			}
			entries = append(entries, e)
		}
	}
	o := &Overrides{}
	var b bytes.Buffer
	for _, e := range entries {
		line := e.line
		if len(e.fields) >= 2 && noKeyFile(e.fields) && (!matched || devMatches(e.fields[1], devs)) {
			f := append([]string(nil), e.fields...)
			if len(f) == 2 {
				f = append(f, SecretKeyPath)
			} else {
				f[2] = SecretKeyPath
			}
			line = strings.Join(f, " ")
			o.Changed = append(o.Changed, "/"+e.file+": "+line)
		}
		fmt.Fprintf(&b, "/%s:%s\n", e.file, line)
	}
	o.File = b.Bytes()
	return o, nil
}

func noKeyFile(f []string) bool {
	return len(f) < 3 || f[2] == "none" || f[2] == "-"
}

func devMatches(dev string, devs []Device) bool {
	for _, d := range devs {
		if dev == d.Path || (d.UUID != "" && strings.Contains(strings.ToLower(dev), strings.ToLower(d.UUID))) {
			return true
		}
	}
	return false
}
