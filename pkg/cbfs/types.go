package cbfs

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// On-flash constants from coreboot's
// src/commonlib/bsd/include/commonlib/bsd/cbfs_serialized.h. Every CBFS
// integer is big-endian; FMAP integers are little-endian.
const (
	// Alignment of every CBFS file header (CBFS_ALIGNMENT).
	Alignment = 64
	// HeaderSize is sizeof(struct cbfs_file): magic, len, type,
	// attributes_offset, offset.
	HeaderSize = 24
	// MaxMetadataSize bounds a file's header + name + attributes
	// (CBFS_METADATA_MAX_SIZE); coreboot skips files whose metadata is larger.
	MaxMetadataSize = 256
	// MaxNameLen is the longest name cbfstool accepts for a file without
	// attributes: 24 + align4(len+1) <= 256.
	MaxNameLen = MaxMetadataSize - HeaderSize - 1
	// emptyHeaderSize is cbfs_calculate_file_header_size(""): the metadata
	// of an empty (free space) entry.
	emptyHeaderSize = HeaderSize + 4

	fileMagic = "LARCHIVE"

	masterHeaderMagic    = 0x4F524243 // "ORBC"
	masterHeaderVersion1 = 0x31313131
	masterHeaderVersion2 = 0x31313132
	masterHeaderSize     = 32

	// metadataHashAnchorMagic marks coreboot's CBFS verification anchor
	// (src/commonlib/bsd/include/commonlib/bsd/metadata_hash.h). It is only
	// linked into a bootblock built with CONFIG_CBFS_VERIFICATION.
	metadataHashAnchorMagic = "\xadMdtHsh\x15"
)

// Type is a CBFS file type (enum cbfs_type).
type Type uint32

// File types from cbfs_serialized.h (coreboot 25.09).
const (
	TypeDeleted     Type = 0x00000000 // free space (a removed file before merging)
	TypeNull        Type = 0xffffffff // free space
	TypeBootblock   Type = 0x01
	TypeCBFSHeader  Type = 0x02 // the legacy master header, as a file
	TypeLegacyStage Type = 0x10
	TypeStage       Type = 0x11
	TypeSELF        Type = 0x20 // payload ("simple elf")
	TypeFITPayload  Type = 0x21
	TypeOptionROM   Type = 0x30
	TypeBootsplash  Type = 0x40
	TypeRaw         Type = 0x50 // what Heads stores under heads/initrd/
	TypeVSA         Type = 0x51
	TypeMBI         Type = 0x52
	TypeMicrocode   Type = 0x53
	TypeIntelFIT    Type = 0x54
	TypeFSP         Type = 0x60
	TypeMRC         Type = 0x61
	TypeMMA         Type = 0x62
	TypeEFI         Type = 0x63
	TypeStruct      Type = 0x70
	TypeAMDFW       Type = 0x80
	TypeCMOSDefault Type = 0xaa
	TypeSPD         Type = 0xab
	TypeMRCCache    Type = 0xac
	TypeCMOSLayout  Type = 0x01aa
)

// typeNames are cbfstool's names (util/cbfstool/cbfs.h filetypes[]), so a
// listing reads like `cbfstool print`.
var typeNames = map[Type]string{
	TypeBootblock:   "bootblock",
	TypeCBFSHeader:  "cbfs header",
	TypeLegacyStage: "legacy stage",
	TypeStage:       "stage",
	TypeSELF:        "simple elf",
	TypeFITPayload:  "fit_payload",
	TypeOptionROM:   "optionrom",
	TypeBootsplash:  "bootsplash",
	TypeRaw:         "raw",
	TypeVSA:         "vsa",
	TypeMBI:         "mbi",
	TypeMicrocode:   "microcode",
	TypeIntelFIT:    "intel_fit",
	TypeFSP:         "fsp",
	TypeMRC:         "mrc",
	TypeCMOSDefault: "cmos_default",
	TypeCMOSLayout:  "cmos_layout",
	TypeSPD:         "spd",
	TypeMRCCache:    "mrc_cache",
	TypeMMA:         "mma",
	TypeEFI:         "efi",
	TypeStruct:      "struct",
	TypeDeleted:     "deleted",
	TypeNull:        "null",
	TypeAMDFW:       "amdfw",
}

// String returns cbfstool's name for t, or "unknown(0x..)".
func (t Type) String() string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("unknown(%#x)", uint32(t))
}

// Empty reports whether t marks free space (coreboot's cbfs_walk skips
// both).
func (t Type) Empty() bool { return t == TypeDeleted || t == TypeNull }

// Compression is a file's compression (enum cbfs_compression).
type Compression uint32

// Compression algorithms.
const (
	CompressNone Compression = 0
	CompressLZMA Compression = 1
	CompressLZ4  Compression = 2
)

// String returns cbfstool's name: "none", "LZMA", "LZ4".
func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressLZMA:
		return "LZMA"
	case CompressLZ4:
		return "LZ4"
	}
	return fmt.Sprintf("unknown(%#x)", uint32(c))
}

// Attribute tags (enum cbfs_file_attr_tag).
const (
	AttrUnused      uint32 = 0
	AttrUnused2     uint32 = 0xffffffff
	AttrCompression uint32 = 0x42435a4c // "BCZL"
	AttrHash        uint32 = 0x68736148 // "hsaH"
	AttrPosition    uint32 = 0x42435350 // "BCSP"
	AttrAlignment   uint32 = 0x42434c41 // "BCLA"
	AttrIBB         uint32 = 0x32494242 // "2IBB"
	AttrPadding     uint32 = 0x47444150 // "GNDP"
	AttrStageHeader uint32 = 0x53746748 // "StgH"
)

// Attribute is one extended file attribute as stored: a big-endian tag and
// length (which covers the 8-byte tag/len prefix), then Data.
type Attribute struct {
	Tag    uint32
	Offset int64  // of the tag, in the image
	Data   []byte // the bytes after tag and len
}

// HashAlgo is vboot's enum vb2_hash_algorithm, as stored in a hash attribute.
type HashAlgo uint8

// Hash algorithms (vboot 2sha.h; values checked against cbfstool add -A).
const (
	HashSHA1   HashAlgo = 1
	HashSHA256 HashAlgo = 2
	HashSHA512 HashAlgo = 3
	HashSHA224 HashAlgo = 4
	HashSHA384 HashAlgo = 5
)

// String returns cbfstool's name ("SHA256", ...).
func (a HashAlgo) String() string {
	switch a {
	case HashSHA1:
		return "SHA1"
	case HashSHA256:
		return "SHA256"
	case HashSHA512:
		return "SHA512"
	case HashSHA224:
		return "SHA224"
	case HashSHA384:
		return "SHA384"
	}
	return fmt.Sprintf("unknown(%d)", uint8(a))
}

// size is vb2_digest_size: 0 for an algorithm coreboot does not know.
func (a HashAlgo) size() int {
	switch a {
	case HashSHA1:
		return sha1.Size
	case HashSHA256:
		return sha256.Size
	case HashSHA512:
		return sha512.Size
	case HashSHA224:
		return sha256.Size224
	case HashSHA384:
		return sha512.Size384
	}
	return 0
}

func (a HashAlgo) new() hash.Hash {
	switch a {
	case HashSHA1:
		return sha1.New()
	case HashSHA256:
		return sha256.New()
	case HashSHA512:
		return sha512.New()
	case HashSHA224:
		return sha256.New224()
	case HashSHA384:
		return sha512.New384()
	}
	return nil
}

// Hash is a file's hash attribute (struct cbfs_file_attr_hash). coreboot
// checks it when CONFIG_CBFS_VERIFICATION is on; Read checks it always.
type Hash struct {
	Algo   HashAlgo
	Digest []byte
}
