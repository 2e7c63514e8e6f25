// Package config reads and writes Heads-style board configuration: lines of
// `CONFIG_NAME=value`, optionally prefixed by `export` and with the value in
// single or double quotes, as in Heads' boards/<board>/<board>.config,
// /etc/config and the CBFS file heads/initrd/etc/config.user.
//
// Heads sources these files with the shell, so a value could run code. goheads
// never evaluates them: a value is literal text. `$(...)`, backquotes and
// `${VAR}` references are kept as text and reported as warnings by Parse, so a
// config written for Heads that relied on expansion is visible rather than
// silently different.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Config is an ordered set of CONFIG_* variables. Later Set calls and later
// layers win, as in Heads where /etc/config is concatenated with config.user.
type Config struct {
	vals  map[string]string
	order []string
}

// Warning is a non-fatal remark about one line of a config file.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg) }

// SyntaxError names the file and line of a line that is not a config assignment.
type SyntaxError struct {
	File string
	Line int
	Text string
	Msg  string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %q (want CONFIG_NAME=value)", e.File, e.Line, e.Msg, e.Text)
}

// New returns an empty Config.
func New() *Config { return &Config{vals: map[string]string{}} }

// Load parses the file at path.
func Load(path string) (*Config, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return Parse(path, f)
}

// maxLine bounds a single line; config files are small and a longer line is
// malformed input rather than configuration.
const maxLine = 64 << 10

// Parse reads config lines from r. name is used in errors and warnings.
// Blank lines and lines starting with '#' are ignored. Any other line that is
// not an assignment to a CONFIG_* name is an error.
func Parse(name string, r io.Reader) (*Config, []Warning, error) {
	c := New()
	var warns []Warning
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		key, val, w, err := parseLine(line)
		if err != nil {
			return nil, warns, &SyntaxError{File: name, Line: n, Text: line, Msg: err.Error()}
		}
		if w != "" {
			warns = append(warns, Warning{File: name, Line: n, Msg: w})
		}
		c.Set(key, val)
	}
	if err := sc.Err(); err != nil {
		return nil, warns, fmt.Errorf("%s:%d: %w", name, n+1, err)
	}
	return c, warns, nil
}

func parseLine(line string) (key, val, warn string, err error) {
	if rest, ok := strings.CutPrefix(line, "export "); ok {
		line = strings.TrimSpace(rest)
	}
	key, raw, ok := strings.Cut(line, "=")
	if !ok {
		return "", "", "", fmt.Errorf("no '='")
	}
	// Make-style `CONFIG_X ?= v` / `:=` appear in Heads board files.
	key = strings.TrimRight(key, " \t?:")
	if !ValidName(key) {
		return "", "", "", fmt.Errorf("bad variable name %q", key)
	}
	raw = strings.TrimSpace(raw)
	val, err = unquote(raw)
	if err != nil {
		return "", "", "", err
	}
	if strings.Contains(val, "$(") || strings.Contains(val, "`") || strings.Contains(val, "${") {
		warn = fmt.Sprintf("%s: shell expansion is not performed; value kept literally", key)
	}
	return key, val, warn, nil
}

// ValidName reports whether s is a CONFIG_* variable name.
func ValidName(s string) bool {
	if !strings.HasPrefix(s, "CONFIG_") || len(s) == len("CONFIG_") {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func unquote(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	switch q := raw[0]; q {
	case '"', '\'':
		end := strings.LastIndexByte(raw, q)
		if end == 0 {
			return "", fmt.Errorf("unterminated %c quote", q)
		}
		if rest := strings.TrimSpace(raw[end+1:]); rest != "" && rest[0] != '#' {
			return "", fmt.Errorf("text after closing quote")
		}
		inner := raw[1:end]
		if q == '"' {
			// The only escapes shell double quotes give meaning to that
			// appear in configs: \" \\ \$ \`.
			var b strings.Builder
			for i := 0; i < len(inner); i++ {
				if inner[i] == '\\' && i+1 < len(inner) && strings.IndexByte("\"\\$`", inner[i+1]) >= 0 {
					i++
				}
				b.WriteByte(inner[i])
			}
			inner = b.String()
		}
		return inner, nil
	}
	// Unquoted: the value ends at whitespace followed by a comment.
	if i := strings.Index(raw, " #"); i >= 0 {
		raw = strings.TrimSpace(raw[:i])
	}
	return raw, nil
}

// Set assigns key=val; a later Set of the same key wins but keeps the first position.
func (c *Config) Set(key, val string) {
	if _, ok := c.vals[key]; !ok {
		c.order = append(c.order, key)
	}
	c.vals[key] = val
}

// Delete removes key.
func (c *Config) Delete(key string) {
	if _, ok := c.vals[key]; !ok {
		return
	}
	delete(c.vals, key)
	for i, k := range c.order {
		if k == key {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// Get returns the value of key and whether it is set.
func (c *Config) Get(key string) (string, bool) {
	v, ok := c.vals[key]
	return v, ok
}

// Value returns the value of key, or "" when unset.
func (c *Config) Value(key string) string { return c.vals[key] }

// Bool reports whether key is set to "y" (Heads' convention for enabled options).
func (c *Config) Bool(key string) bool { return c.vals[key] == "y" }

// Keys returns the keys in first-set order.
func (c *Config) Keys() []string { return append([]string(nil), c.order...) }

// Merge applies every key of other on top of c (other wins).
func (c *Config) Merge(other *Config) {
	for _, k := range other.order {
		c.Set(k, other.vals[k])
	}
}

// Clone returns an independent copy.
func (c *Config) Clone() *Config {
	n := New()
	n.Merge(c)
	return n
}

// Bytes renders the config as `CONFIG_X="v"` lines, in order, in the form
// Heads writes config.user (`export CONFIG_X="v"`), which both shells and this
// parser read back identically.
func (c *Config) Bytes() []byte {
	var b bytes.Buffer
	for _, k := range c.order {
		fmt.Fprintf(&b, "export %s=%s\n", k, quote(c.vals[k]))
	}
	return b.Bytes()
}

// SortedBytes is Bytes with keys in lexical order, for reproducible files.
func (c *Config) SortedBytes() []byte {
	keys := c.Keys()
	sort.Strings(keys)
	var b bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&b, "export %s=%s\n", k, quote(c.vals[k]))
	}
	return b.Bytes()
}

// quote renders v as a double-quoted shell word. Newlines cannot round-trip
// through a line-based file, so they become spaces.
func quote(v string) string {
	r := strings.NewReplacer("\n", " ", "\r", " ", `\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}

// Paths of the runtime configuration in the initramfs.
const (
	// BoardPath is the board's build-time configuration.
	BoardPath = "/etc/config"
	// UserPath is the owner's settings, copied from CBFS
	// heads/initrd/etc/config.user by cbfs-init.
	UserPath = "/etc/config.user"
	// RuntimePath is the merged configuration init writes (Heads: /tmp/config).
	RuntimePath = "/tmp/config"
)

// LoadLayers reads the board config then the user config (later lines
// win). A missing user config is normal; a missing board config is not.
func LoadLayers(board, user string) (*Config, []Warning, error) {
	c, warns, err := Load(board)
	if err != nil {
		return nil, warns, err
	}
	u, uw, err := Load(user)
	warns = append(warns, uw...)
	switch {
	case err == nil:
		c.Merge(u)
	case errors.Is(err, os.ErrNotExist):
	default:
		// A broken config.user must not stop the boot; the board defaults apply.
		warns = append(warns, Warning{File: user, Msg: fmt.Sprintf("ignored: %v", err)})
	}
	return c, warns, nil
}

// Runtime returns the configuration commands run with: the merged file
// init wrote, or the board configuration before init has run.
func Runtime() *Config {
	if c, _, err := Load(RuntimePath); err == nil {
		return c
	}
	if c, _, err := LoadLayers(BoardPath, UserPath); err == nil {
		return c
	}
	return New()
}
