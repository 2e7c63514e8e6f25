// Package cpio writes and reads "newc" cpio archives, the format the Linux
// kernel unpacks as an initramfs.
//
// The writer is reproducible by construction: it never reads ownership,
// timestamps or inode numbers from the host. Every record has uid/gid 0,
// mtime 0 and an inode number that counts up from 1 in write order, so the
// same entries in the same order give the same bytes.
package cpio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// File types in the mode field (Linux stat.h values).
const (
	TypeMask    = 0o170000
	TypeDir     = 0o040000
	TypeFile    = 0o100000
	TypeSymlink = 0o120000
	TypeChar    = 0o020000
	TypeBlock   = 0o060000
)

const (
	magic      = "070701"
	headerSize = 110
	trailer    = "TRAILER!!!"
)

// Entry is one archive member.
type Entry struct {
	Name  string // relative path without leading "/" or "./"
	Mode  uint32 // type bits | permission bits
	Data  []byte // file contents or symlink target
	Major uint32 // device numbers for TypeChar / TypeBlock
	Minor uint32
}

// Dir, File, Symlink and CharDev build entries.
func Dir(name string, perm uint32) Entry { return Entry{Name: name, Mode: TypeDir | perm} }
func File(name string, perm uint32, data []byte) Entry {
	return Entry{Name: name, Mode: TypeFile | perm, Data: data}
}
func Symlink(name, target string) Entry {
	return Entry{Name: name, Mode: TypeSymlink | 0o777, Data: []byte(target)}
}
func CharDev(name string, perm, major, minor uint32) Entry {
	return Entry{Name: name, Mode: TypeChar | perm, Major: major, Minor: minor}
}

// Writer writes newc records.
type Writer struct {
	w   io.Writer
	n   int64
	ino uint32
	err error
}

// NewWriter returns a writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	var n int
	n, w.err = w.w.Write(b)
	w.n += int64(n)
}

func (w *Writer) pad(align int64) {
	if r := w.n % align; r != 0 {
		w.write(make([]byte, align-r))
	}
}

// Write appends one entry.
func (w *Writer) Write(e Entry) error {
	name := strings.TrimPrefix(strings.TrimPrefix(e.Name, "./"), "/")
	if name == "" || strings.Contains(name, "\x00") {
		return fmt.Errorf("cpio: bad entry name %q", e.Name)
	}
	if e.Mode&TypeMask == 0 {
		return fmt.Errorf("cpio: %s: no file type in mode %o", name, e.Mode)
	}
	w.ino++
	nlink := uint32(1)
	if e.Mode&TypeMask == TypeDir {
		nlink = 2
	}
	w.header(w.ino, e.Mode, nlink, uint32(len(e.Data)), e.Major, e.Minor, name)
	w.write(e.Data)
	w.pad(4)
	return w.err
}

func (w *Writer) header(ino, mode, nlink, size, rmaj, rmin uint32, name string) {
	var b bytes.Buffer
	b.WriteString(magic)
	for _, v := range []uint32{ino, mode, 0, 0, nlink, 0, size, 0, 0, rmaj, rmin, uint32(len(name) + 1), 0} {
		fmt.Fprintf(&b, "%08x", v)
	}
	b.WriteString(name)
	b.WriteByte(0)
	w.write(b.Bytes())
	w.pad(4)
}

// Close writes the trailer and pads the archive to a multiple of 512 bytes
// (Heads pads initrds so appended archives start on a block boundary).
func (w *Writer) Close() error {
	w.header(0, 0, 1, 0, 0, 0, trailer)
	w.pad(512)
	return w.err
}

// WriteAll writes entries sorted by name (parents before children), then
// the trailer.
func WriteAll(out io.Writer, entries []Entry) error {
	sorted := append([]Entry(nil), entries...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for i := 1; i < len(sorted); i++ {
		if sorted[i].Name == sorted[i-1].Name {
			return fmt.Errorf("cpio: duplicate entry %q", sorted[i].Name)
		}
	}
	w := NewWriter(out)
	for _, e := range sorted {
		if err := w.Write(e); err != nil {
			return err
		}
	}
	return w.Close()
}

// ErrFormat is returned for data that is not a newc archive.
var ErrFormat = errors.New("not a newc cpio archive")

// maxEntry bounds a single member read into memory; an initrd member larger
// than this is not something goheads needs to look into.
const maxEntry = 256 << 20

// Reader reads newc records from an uncompressed archive.
type Reader struct {
	r   io.Reader
	off int64
	// Skip, when set, is asked for each member; the data of a skipped
	// member is read past without being kept (Entry.Data is nil).
	Skip func(name string, size uint32) bool
}

// NewReader returns a reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

func (r *Reader) read(n int64) ([]byte, error) {
	b := make([]byte, n)
	m, err := io.ReadFull(r.r, b)
	r.off += int64(m)
	return b, err
}

func (r *Reader) skipPad() error {
	if p := r.off % 4; p != 0 {
		_, err := r.read(4 - p)
		return err
	}
	return nil
}

// Offset is how many bytes of the input the reader has consumed: after
// the trailer, the archive's length.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next entry, or io.EOF after the trailer.
func (r *Reader) Next() (Entry, error) {
	start := r.off
	h, err := r.read(headerSize)
	if err != nil {
		if err == io.EOF && r.off == start {
			return Entry{}, io.EOF
		}
		return Entry{}, fmt.Errorf("cpio: header at offset %d: %w", start, err)
	}
	if string(h[:6]) != magic {
		return Entry{}, fmt.Errorf("cpio: offset %d: %w (magic %q)", start, ErrFormat, h[:6])
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return Entry{}, fmt.Errorf("cpio: offset %d: field %d: %w", start, i, ErrFormat)
		}
		f[i] = uint32(v)
	}
	mode, size, rmaj, rmin, namesize := f[1], f[6], f[9], f[10], f[11]
	if namesize == 0 || namesize > 4096 || size > maxEntry {
		return Entry{}, fmt.Errorf("cpio: offset %d: name size %d / file size %d out of range: %w", start, namesize, size, ErrFormat)
	}
	nb, err := r.read(int64(namesize))
	if err != nil {
		return Entry{}, fmt.Errorf("cpio: name at offset %d: %w", start, err)
	}
	name := string(bytes.TrimRight(nb, "\x00"))
	if err := r.skipPad(); err != nil {
		return Entry{}, err
	}
	// Copy rather than allocate size up front: a lying header must not make
	// the reader allocate more than the input holds.
	var db bytes.Buffer
	var dst io.Writer = &db
	if r.Skip != nil && name != trailer && r.Skip(name, size) {
		dst = io.Discard
	}
	m, err := io.CopyN(dst, r.r, int64(size))
	r.off += m
	data := db.Bytes()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return Entry{}, fmt.Errorf("cpio: %s: data: %w", name, err)
	}
	if err := r.skipPad(); err != nil && err != io.EOF {
		return Entry{}, err
	}
	if name == trailer {
		return Entry{}, io.EOF
	}
	return Entry{Name: name, Mode: mode, Data: data, Major: rmaj, Minor: rmin}, nil
}

// ReadAll reads every entry up to the trailer.
func ReadAll(r io.Reader) ([]Entry, error) {
	cr := NewReader(r)
	var out []Entry
	for {
		e, err := cr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
}
