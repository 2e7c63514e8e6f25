// Package initrd looks inside an operating system's initramfs the way the
// kernel unpacks it (init/initramfs.c): newc archives one after another,
// zero bytes between them, and a compressed stream (gzip, bzip2, xz, lzma
// or zstd) holding more archives. Distributions ship exactly that: an
// uncompressed early archive (CPU microcode) followed by the compressed
// main one.
//
// goheads reads OS initrds to find their crypttab files (Heads'
// unpack_initramfs.sh in kexec-save-default); the bytes come from a /boot
// that was verified, but a parser of disk contents still bounds everything
// it reads.
package initrd

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/goheads/goheads/pkg/cpio"
)

// ErrCompression: the initrd uses a compression goheads does not read
// (lz4, lzo) or is not an initramfs at all.
var ErrCompression = errors.New("unsupported initramfs compression")

// ErrTooLarge: the initrd unpacks to more than Options.MaxUnpacked.
var ErrTooLarge = errors.New("initramfs unpacks to too much data")

// File is a regular file found in the initramfs.
type File struct {
	Name string // as in the archive, without leading "/" or "./"
	Data []byte
}

// Options select what Find keeps.
type Options struct {
	// Want selects regular files by name (nil: none).
	Want func(name string) bool
	// MaxFile skips wanted files larger than this (default 1 MiB).
	MaxFile int64
	// MaxUnpacked bounds the uncompressed bytes read (default 1 GiB).
	MaxUnpacked int64
}

const (
	defaultMaxFile     = 1 << 20
	defaultMaxUnpacked = 1 << 30
)

// Find returns the wanted regular files of the initramfs in data, in
// archive order. A later archive's file of the same name replaces an
// earlier one, as the kernel's unpacking does.
func Find(data []byte, o Options) ([]File, error) {
	if o.MaxFile <= 0 {
		o.MaxFile = defaultMaxFile
	}
	if o.MaxUnpacked <= 0 {
		o.MaxUnpacked = defaultMaxUnpacked
	}
	f := &finder{o: o, index: map[string]int{}}
	off := 0
	for {
		for off < len(data) && data[off] == 0 {
			off++
		}
		if off >= len(data) {
			return f.files, nil
		}
		rest := data[off:]
		if isCPIO(rest) {
			if off%4 != 0 {
				return f.files, fmt.Errorf("initramfs: archive at offset %d is not 4-byte aligned", off)
			}
			n, err := f.archive(bytes.NewReader(rest))
			if err != nil {
				return f.files, fmt.Errorf("initramfs: archive at offset %d: %w", off, err)
			}
			off += int(n)
			continue
		}
		seg, err := decompress(rest)
		if err != nil {
			return f.files, fmt.Errorf("initramfs: data at offset %d: %w", off, err)
		}
		err = f.stream(seg.r)
		if seg.close != nil {
			seg.close()
		}
		if err != nil {
			return f.files, fmt.Errorf("initramfs: %s stream at offset %d: %w", seg.name, off, err)
		}
		n, known := seg.used()
		if !known {
			// bzip2 and lzma streams do not say where they end; every
			// distribution puts the compressed archive last anyway.
			return f.files, nil
		}
		off += n
	}
}

type finder struct {
	o        Options
	files    []File
	index    map[string]int
	unpacked int64
}

func isCPIO(b []byte) bool {
	return bytes.HasPrefix(b, []byte("070701")) || bytes.HasPrefix(b, []byte("070702"))
}

// archive reads one newc archive up to its trailer and returns its length.
func (f *finder) archive(r io.Reader) (int64, error) {
	cr := cpio.NewReader(r)
	var skipped bool
	cr.Skip = func(name string, size uint32) bool {
		skipped = f.o.Want == nil || !f.o.Want(name) || int64(size) > f.o.MaxFile
		return skipped
	}
	for {
		e, err := cr.Next()
		if err == io.EOF {
			return cr.Offset(), nil
		}
		if err != nil {
			return cr.Offset(), err
		}
		if skipped || e.Mode&cpio.TypeMask != cpio.TypeFile {
			continue
		}
		if i, ok := f.index[e.Name]; ok {
			f.files[i].Data = e.Data
			continue
		}
		f.index[e.Name] = len(f.files)
		f.files = append(f.files, File{Name: e.Name, Data: e.Data})
	}
}

// stream reads archives separated by zero padding from a decompressed stream.
func (f *finder) stream(r io.Reader) error {
	lr := &limited{r: r, left: f.o.MaxUnpacked}
	br := bufio.NewReader(lr)
	var off int64
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if b == 0 {
			off++
			continue
		}
		br.UnreadByte()
		head, _ := br.Peek(6)
		if !isCPIO(head) {
			return fmt.Errorf("offset %d: %w (magic %q)", off, cpio.ErrFormat, head)
		}
		if off%4 != 0 {
			return fmt.Errorf("archive at offset %d is not 4-byte aligned", off)
		}
		n, err := f.archive(br)
		off += n
		if err != nil {
			return fmt.Errorf("archive at offset %d: %w", off-n, err)
		}
	}
}

// limited is io.LimitReader that says why it stopped.
type limited struct {
	r    io.Reader
	left int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// segment is a compressed stream being read.
type segment struct {
	name  string
	r     io.Reader
	close func()
	// used is how many compressed bytes the stream took, once read to its
	// end; false when the format does not tell.
	used func() (int, bool)
}

// decompress picks the decompressor by magic number, as the kernel's
// decompress_method does.
func decompress(b []byte) (*segment, error) {
	cr := &countingReader{b: b}
	counted := func() (int, bool) { return cr.n, true }
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}), bytes.HasPrefix(b, []byte{0x1f, 0x9e}):
		// gzip and flate read byte by byte from an io.ByteReader: the
		// count is exactly the member's length.
		z, err := gzip.NewReader(cr)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		z.Multistream(false)
		return &segment{name: "gzip", r: z, used: counted}, nil
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		z, err := xz.ReaderConfig{SingleStream: true}.NewReader(cr)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		x := &xzStream{r: z, cr: cr}
		return &segment{name: "xz", r: x, used: x.used}, nil
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		n, err := zstdFrameLen(b)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		// One goroutine and bounded windows: this runs in firmware RAM.
		z, err := zstd.NewReader(bytes.NewReader(b[:n]), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return &segment{name: "zstd", r: z, close: z.Close, used: func() (int, bool) { return n, true }}, nil
	case bytes.HasPrefix(b, []byte("BZh")):
		return &segment{name: "bzip2", r: bzip2.NewReader(bytes.NewReader(b)), used: unknown}, nil
	case bytes.HasPrefix(b, []byte{0x5d, 0, 0}):
		z, err := lzma.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("lzma: %w", err)
		}
		return &segment{name: "lzma", r: z, used: unknown}, nil
	case bytes.HasPrefix(b, []byte{0x02, 0x21, 0x4c, 0x18}), bytes.HasPrefix(b, []byte{0x04, 0x22, 0x4d, 0x18}):
		return nil, fmt.Errorf("%w: lz4 (rebuild the OS initrd with zstd, xz or gzip)", ErrCompression)
	case bytes.HasPrefix(b, []byte{0x89, 'L', 'Z', 'O'}):
		return nil, fmt.Errorf("%w: lzo (rebuild the OS initrd with zstd, xz or gzip)", ErrCompression)
	}
	return nil, fmt.Errorf("%w: magic % x", ErrCompression, b[:min(len(b), 8)])
}

func unknown() (int, bool) { return 0, false }

// countingReader is a bytes.Reader that counts what was taken.
type countingReader struct {
	b []byte
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= len(c.b) {
		return 0, io.EOF
	}
	k := copy(p, c.b[c.n:])
	c.n += k
	return k, nil
}

func (c *countingReader) ReadByte() (byte, error) {
	if c.n >= len(c.b) {
		return 0, io.EOF
	}
	c.n++
	return c.b[c.n-1], nil
}

// xzStream ends at the end of one xz stream. In single-stream mode the
// xz reader checks for end of input by reading one byte more, which is
// "unexpected data" when something follows (padding, another archive):
// that byte is given back and the stream counts as ended.
type xzStream struct {
	r    io.Reader
	cr   *countingReader
	done bool
}

func (x *xzStream) Read(p []byte) (int, error) {
	n, err := x.r.Read(p)
	if err != nil && err != io.EOF && err.Error() == "xz: unexpected data after stream" {
		x.cr.n--
		err = io.EOF
	}
	if err == io.EOF {
		x.done = true
	}
	return n, err
}

func (x *xzStream) used() (int, bool) { return x.cr.n, x.done }

// zstdFrameLen walks a zstd frame's block headers (RFC 8878 section 3.1)
// to find where it ends, without decompressing it.
func zstdFrameLen(b []byte) (int, error) {
	if len(b) < 6 {
		return 0, io.ErrUnexpectedEOF
	}
	fhd := b[4]
	if fhd&0x08 != 0 {
		return 0, errors.New("reserved frame header bit set")
	}
	single := fhd&0x20 != 0
	n := 5
	if !single {
		n++ // window descriptor
	}
	n += []int{0, 1, 2, 4}[fhd&3]
	fcs := []int{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcs = 1
	}
	n += fcs
	for {
		if n+3 > len(b) {
			return 0, io.ErrUnexpectedEOF
		}
		h := uint32(b[n]) | uint32(b[n+1])<<8 | uint32(b[n+2])<<16
		n += 3
		size := int(h >> 3)
		switch (h >> 1) & 3 {
		case 1: // RLE: one byte repeated
			size = 1
		case 3:
			return 0, errors.New("reserved block type")
		}
		n += size
		if n > len(b) {
			return 0, io.ErrUnexpectedEOF
		}
		if h&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		n += 4 // content checksum
	}
	if n > len(b) {
		return 0, io.ErrUnexpectedEOF
	}
	return n, nil
}
