package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/tpm"
)

// Board is a parsed boards/<name>/<name>.config.
type Board struct {
	Name   string
	Dir    string
	Path   string
	Config *config.Config
}

var boardName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// LoadBoard reads boards/<name>/<name>.config under root.
func LoadBoard(root, name string) (*Board, error) {
	if !boardName.MatchString(name) {
		return nil, fmt.Errorf("board name %q: use lowercase letters, digits, '.', '_' and '-'", name)
	}
	dir := filepath.Join(root, "boards", name)
	path := filepath.Join(dir, name+".config")
	cfg, warns, err := config.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &fixError{what: "no board " + name, fix: "pick one of: " + strings.Join(listBoards(root), ", ")}
	}
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		fmt.Fprintf(os.Stderr, "build: warning: %s\n", w)
	}
	if n := cfg.Value("CONFIG_BOARD_NAME"); n != "" && n != name {
		return nil, fmt.Errorf("%s: CONFIG_BOARD_NAME=%q does not match the board directory %q", path, n, name)
	}
	cfg.Set("CONFIG_BOARD_NAME", name)
	return &Board{Name: name, Dir: dir, Path: path, Config: cfg}, nil
}

func listBoards(root string) []string {
	ents, _ := os.ReadDir(filepath.Join(root, "boards"))
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// KernelFamily is the kernel-configs/<family>.config fragment the board uses.
func (b *Board) KernelFamily() string {
	if f := b.Config.Value("CONFIG_LINUX_CONFIG"); f != "" {
		return f
	}
	return "qemu"
}

// TPMFamily is the TPM the board has: CONFIG_TPM2_TOOLS=y means TPM 2.0 as in
// Heads, CONFIG_TPM=y alone TPM 1.2, neither no TPM (0).
func (b *Board) TPMFamily() tpm.Family {
	switch {
	case b.Config.Bool("CONFIG_TPM2_TOOLS"):
		return tpm.Family20
	case b.Config.Bool("CONFIG_TPM"):
		return tpm.Family12
	}
	return 0
}

// Cmdline is the kernel command line the board boots with.
func (b *Board) Cmdline() string { return b.Config.Value("CONFIG_LINUX_COMMAND_LINE") }

// OutDir is out/<board>.
func (o *Options) OutDir(b *Board) string { return filepath.Join(o.Out, b.Name) }
