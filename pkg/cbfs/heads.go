package cbfs

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode"
)

// UserPrefix starts the names of the files Heads copies from CBFS into the
// initramfs at boot (config.user, the GPG keyring and trustdb).
const UserPrefix = "heads/initrd/"

// Names of the files Heads writes under UserPrefix.
const (
	ConfigUserName = UserPrefix + "etc/config.user"
	PubringName    = UserPrefix + ".gnupg/pubring.kbx"
	TrustdbName    = UserPrefix + ".gnupg/trustdb.gpg"
)

// BoardFile is the raw file naming the board a goheads ROM was built for
// (one line), so an update for another board is refused. coreboot does not
// load it: it is in no PCR.
const BoardFile = "goheads/board"

// ErrWrongBoard means a ROM was built for another board than this one.
var ErrWrongBoard = errors.New("ROM is for another board")

// CheckBoard refuses a ROM that does not record board as the one it was
// built for: flashing another board's coreboot bricks the machine, and
// predicting its PCRs would seal the owner's secret to a firmware that
// never boots here.
func CheckBoard(img *Image, board string) error {
	got := Board(img)
	if got == board && board != "" {
		return nil
	}
	if got == "" {
		got = "none recorded (not a goheads ROM)"
	}
	return fmt.Errorf("%w: built for %s, this is %s; fix: use the ROM built with BOARD=%s", ErrWrongBoard, got, board, board)
}

// Board returns the board name a goheads ROM records, or "" if it has none.
func Board(img *Image) string {
	b, err := img.Read(BoardFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// UserFile is one file Heads' cbfs-init.sh loads at boot.
type UserFile struct {
	// Name is the CBFS name, e.g. "heads/initrd/.gnupg/pubring.kbx".
	Name string
	// Path is "/" + Name without UserPrefix, e.g. "/.gnupg/pubring.kbx":
	// where the file goes in the initramfs, and the exact string Heads
	// measures (`tpmr.sh extend -ic "$filename"` hashes it without a
	// newline). It is not cleaned; see CheckPath before writing.
	Path string
	// Data is the stored content, compressed or not: Heads' `cbfs -r` does
	// not decompress, so neither does UserFiles (Compression says if the
	// bytes are compressed, which no Heads tool does).
	Data        []byte
	Compression Compression
	File        File
}

// UserFiles returns the files Heads' initrd/bin/cbfs-init.sh loads, in CBFS
// order, with their contents. Heads lists `cbfs -t 50 -l | grep
// "^heads/initrd/"`: raw (0x50) files only, in the order they appear in
// CBFS; for each it writes the content to "/"+rest and extends CONFIG_PCR
// (7) with H(path) then H(content). The caller measures in this order
// before using any file, and writes only files whose CheckPath passes.
//
// Where goheads differs (only for images no Heads tool writes): a name
// containing whitespace is split by Heads' unquoted `for cbfsname in
// $(echo $cbfsfiles)` and then fails to load, stopping cbfs-init; here it
// is returned and CheckPath rejects it (glob characters, which Heads'
// loop would also expand, are left alone). With two files of the same
// name Heads reads the first one's content twice; here each entry carries
// its own content. A file whose hash attribute
// does not match its content is an error here; Heads ignores hashes.
// Entries coreboot's walker skips as malformed (Image.Problems) are
// neither returned nor measured (Heads' tool checks no header field but
// the magic, and would list them), and a file after a stretch without a
// header is found, as coreboot finds it, where Heads' tool stops.
func UserFiles(img *Image) ([]UserFile, error) {
	var out []UserFile
	for _, f := range img.Files() {
		if f.Type != TypeRaw || !strings.HasPrefix(f.Name, UserPrefix) {
			continue
		}
		data, err := img.content(f)
		if err != nil {
			return nil, fmt.Errorf("cbfs: load %s: %w", f.Name, err)
		}
		out = append(out, UserFile{
			Name:        f.Name,
			Path:        "/" + strings.TrimPrefix(f.Name, UserPrefix),
			Data:        data,
			Compression: f.Compression,
			File:        f,
		})
	}
	return out, nil
}

// CheckPath reports whether Path is safe to create in the initramfs: an
// absolute, clean path below "/" (no "..", no "//", no trailing "/"), free
// of control characters and of whitespace (which Heads' shell loop would
// split).
func (u UserFile) CheckPath() error {
	p := u.Path
	switch {
	case p == "/":
		return fmt.Errorf("cbfs: %s: the name ends at %q, so there is no file name", u.Name, UserPrefix)
	case path.Clean(p) != p:
		return fmt.Errorf("cbfs: %s: target path %q is not clean (\"..\", \"//\", \".\" or a trailing \"/\"); refusing to write it", u.Name, p)
	case strings.IndexFunc(p, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar }) >= 0:
		return fmt.Errorf("cbfs: %s: target path %q contains whitespace, control or invalid characters, which Heads cannot load either; refusing to write it", u.Name, p)
	}
	return nil
}
