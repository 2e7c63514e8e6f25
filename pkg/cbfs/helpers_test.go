package cbfs

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goheads/goheads/pkg/testenv"
)

// tool runs cbfstool (or fmaptool) and returns stdout; stderr goes into
// the failure message.
type tool struct {
	t    testing.TB
	path string
}

func needCbfstool(t testing.TB) tool {
	t.Helper()
	return tool{t: t, path: testenv.NeedTool(t, "cbfstool", "coreboot-utils")}
}

func (c tool) run(args ...string) string {
	c.t.Helper()
	out, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", filepath.Base(c.path), strings.Join(args, " "), err)
	}
	return out
}

func (c tool) try(args ...string) (string, error) {
	c.t.Helper()
	cmd := exec.Command(c.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// row is one line of `cbfstool print -k -v`.
type row struct {
	Name, Offset, Type, Meta, Data, Extra string
}

func (r row) String() string {
	return strings.Join([]string{r.Name, r.Offset, r.Type, r.Meta, r.Data, r.Extra}, "\t")
}

// printRows parses `cbfstool IMG print -k -v`.
func (c tool) printRows(img string) []row {
	c.t.Helper()
	var rows []row
	for _, line := range strings.Split(c.run(img, "print", "-k", "-v"), "\n") {
		if line == "" || strings.HasPrefix(line, "[") || strings.HasPrefix(line, "Name\t") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 6 {
			c.t.Fatalf("cbfstool print -k -v: short line %q", line)
		}
		r := row{Name: f[0], Offset: f[1], Type: f[2], Meta: f[3], Data: f[4], Extra: strings.Join(f[6:], "\t")}
		rows = append(rows, r)
	}
	return rows
}

// ourRows renders img's entries the way `cbfstool print -k -v` does.
func ourRows(img *Image) []row {
	var rows []row
	for _, f := range img.Entries() {
		name := f.Name
		if name == "" {
			name = "(empty)"
		}
		off := f.Offset - img.start
		if img.layout == LayoutMasterHeader {
			off = f.Offset // cbfstool's legacy buffer is the whole file
		}
		r := row{
			Name:   name,
			Offset: fmt.Sprintf("%#x", off),
			Type:   f.Type.String(),
			Meta:   fmt.Sprintf("%#x", f.DataOffset-f.Offset),
			Data:   fmt.Sprintf("%#x", f.Size),
		}
		var extra []string
		if f.Compression != CompressNone {
			extra = append(extra, fmt.Sprintf("comp:%s:%#x", f.Compression, f.DecompressedSize))
		}
		if f.Hash != nil {
			extra = append(extra, fmt.Sprintf("hash:%s:%x:valid", f.Hash.Algo, f.Hash.Digest))
		}
		r.Extra = strings.Join(extra, "\t")
		rows = append(rows, r)
	}
	return rows
}

func diffRows(t testing.TB, what string, got, want []row) {
	t.Helper()
	g, w := rowsText(got), rowsText(want)
	if g != w {
		t.Errorf("%s: listing differs from cbfstool's\n--- goheads\n%s--- cbfstool\n%s", what, g, w)
	}
}

func rowsText(rs []row) string {
	var sb strings.Builder
	for _, r := range rs {
		sb.WriteString(r.String())
		sb.WriteByte('\n')
	}
	return sb.String()
}

// writeTemp writes b to a new file in dir and returns its path.
func writeTemp(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

// fmdFor writes an fmd describing a flash of size bytes with an FMAP area
// of fmapSize bytes at fmapOff and COREBOOT over the rest above it, and
// returns the binary FMAP fmaptool makes of it.
func fmapFile(t testing.TB, dir string, size, fmapOff, fmapSize int64) string {
	t.Helper()
	fmaptool := testenv.NeedTool(t, "fmaptool", "coreboot-utils")
	fmd := fmt.Sprintf("FLASH %#x {\n", size)
	if fmapOff > 0 {
		fmd += fmt.Sprintf("\tRW_PAD@0 %#x\n", fmapOff)
	}
	fmd += fmt.Sprintf("\tFMAP@%#x %#x\n\tCOREBOOT(CBFS)\n}\n", fmapOff, fmapSize)
	src := writeTemp(t, dir, "layout.fmd", []byte(fmd))
	out := filepath.Join(dir, "layout.fmap")
	if b, err := exec.Command(fmaptool, src, out).CombinedOutput(); err != nil {
		t.Fatalf("fmaptool %s: %v\n%s", fmd, err, b)
	}
	return out
}
