package keyring

import (
	"encoding/binary"
	"fmt"
)

// GnuPG keybox (pubring.kbx), the format gpg 2.1+ writes and Heads stores in
// CBFS as heads/initrd/.gnupg/pubring.kbx. go-crypto cannot read it. Layout
// (GnuPG kbx/keybox-blob.c; all integers big-endian, offsets from the start
// of the blob):
//
//	u32 blob length (including these 4 bytes)
//	u8  blob type: 0 empty, 1 header, 2 OpenPGP, 3 X.509
//	u8  blob version (1)
//	header blob:  u16 flags, "KBXf", ... (32 bytes in gpg 2.2)
//	OpenPGP blob: u16 flags, u32 keyblock offset, u32 keyblock length,
//	              key/uid/sig summaries, ..., the keyblock (plain OpenPGP
//	              packets), 20-byte SHA-1 checksum
//
// Only the keyblock is used: the summaries are gpg's search index and carry
// nothing the packets do not. The file is untrusted input (it comes from a
// ROM image the user flashed): every length and offset is bounds-checked.

const (
	kbxBlobEmpty   = 0
	kbxBlobHeader  = 1
	kbxBlobOpenPGP = 2
	kbxBlobX509    = 3

	// kbxMinBlob is the smallest blob with a type byte and a version byte.
	kbxMinBlob = 6
	// kbxMinPGPBlob covers the fixed OpenPGP blob fields up to the keyblock
	// length (offset 16).
	kbxMinPGPBlob = 16
	// kbxMaxBlob bounds one blob; gpg itself refuses blobs over 5 MB
	// (keybox-file.c IMAGELEN_LIMIT).
	kbxMaxBlob = 5 << 20
)

var kbxMagic = []byte("KBXf")

// isKeybox reports whether data starts like a keybox: a header blob with the
// KBXf magic. gpg always writes the header blob first.
func isKeybox(data []byte) bool {
	return len(data) >= 12 && data[4] == kbxBlobHeader && string(data[8:12]) == string(kbxMagic)
}

// keyboxBlock is one OpenPGP keyblock and the file offset of its blob (for
// error messages).
type keyboxBlock struct {
	offset int
	data   []byte
}

// parseKeybox splits a keybox into its OpenPGP keyblocks. The returned slices
// alias data. Errors name the byte offset of the bad blob; blobs of a type
// this reader does not know (a newer gpg) are skipped and reported in notes,
// since they cannot add a key goheads would trust anyway.
func parseKeybox(data []byte) (blocks []keyboxBlock, notes []string, err error) {
	if !isKeybox(data) {
		return nil, nil, fmt.Errorf("keybox: no KBXf header blob at offset 0")
	}
	for off := 0; off < len(data); {
		if len(data)-off < 4 {
			return nil, nil, fmt.Errorf("keybox: offset %d: %d trailing bytes, too short for a blob length", off, len(data)-off)
		}
		n := binary.BigEndian.Uint32(data[off:])
		if n < kbxMinBlob || n > kbxMaxBlob || uint64(n) > uint64(len(data)-off) {
			return nil, nil, fmt.Errorf("keybox: offset %d: blob length %d outside %d..%d and the %d bytes left", off, n, kbxMinBlob, kbxMaxBlob, len(data)-off)
		}
		blob := data[off : off+int(n)]
		switch typ := blob[4]; typ {
		case kbxBlobEmpty, kbxBlobX509:
			// Deleted blobs and S/MIME certificates: not OpenPGP keys.
		case kbxBlobHeader:
			if off != 0 {
				return nil, nil, fmt.Errorf("keybox: offset %d: second header blob", off)
			}
		case kbxBlobOpenPGP:
			if len(blob) < kbxMinPGPBlob {
				return nil, nil, fmt.Errorf("keybox: offset %d: OpenPGP blob of %d bytes, need at least %d", off, len(blob), kbxMinPGPBlob)
			}
			kbOff := binary.BigEndian.Uint32(blob[8:])
			kbLen := binary.BigEndian.Uint32(blob[12:])
			if kbOff < kbxMinPGPBlob || uint64(kbOff)+uint64(kbLen) > uint64(len(blob)) || kbLen == 0 {
				return nil, nil, fmt.Errorf("keybox: offset %d: keyblock at %d+%d does not fit in the %d-byte blob", off, kbOff, kbLen, len(blob))
			}
			blocks = append(blocks, keyboxBlock{offset: off, data: blob[kbOff : kbOff+kbLen]})
		default:
			notes = append(notes, fmt.Sprintf("keybox: offset %d: skipped blob of unknown type %d", off, typ))
		}
		off += int(n)
	}
	return blocks, notes, nil
}
